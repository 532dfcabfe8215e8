"""Benchmark: rendering a long answer (~40,000 characters of realistic Markdown) to Slack mrkdwn.

Target: under 1 s per render (it runs on the event loop at the final edit). Prints the median and its
ratio to markdown-it-py's own parse of the same text measured in the same run — the floor of any
renderer built on it.

    .venv/bin/python bench/mrkdwn.py
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import yaml
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.slack.mrkdwn import to_mrkdwn  # noqa: E402

RUNS = 7


def median_s(work, text: str) -> float:
    times = []
    for _ in range(RUNS):
        began = time.perf_counter()
        work(text)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    cases = yaml.safe_load((ROOT / "tests" / "data" / "mrkdwn" / "cases.yaml").read_text("utf-8"))
    answer = next(case["markdown"] for case in cases if case["name"] == "long_realistic_answer")
    markdown = (answer + "\n\n") * 40
    parser = MarkdownIt("commonmark").enable("table").enable("strikethrough")
    reference = median_s(parser.parse, markdown)
    ours = median_s(to_mrkdwn, markdown)
    print(f"{len(markdown):,} characters: to_mrkdwn median {ours * 1000:.1f} ms (target < 1000 ms), "
          f"markdown-it parse {reference * 1000:.1f} ms, ratio {ours / reference:.2f}x")


if __name__ == "__main__":
    main()
