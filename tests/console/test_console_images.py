"""`/upload` of an image in the real `threadbot console` process: it goes to the model with the next message."""
from __future__ import annotations

import base64
import io
import subprocess

from PIL import Image

from tests.console.test_console import START_TIMEOUT, THREADBOT, _env, anthropic  # noqa: F401  (fixture)


async def test_an_uploaded_image_goes_with_the_next_message_not_to_the_knowledge_base(anthropic, tmp_path):
    fake, url = anthropic
    picture = tmp_path / "graph.png"
    Image.linear_gradient("L").resize((640, 360)).convert("RGB").save(picture, "PNG")
    env = _env(tmp_path, ANTHROPIC_API_KEY="sk-ant-fake-test-key", ANTHROPIC_BASE_URL=url)
    first = len(fake.requests)
    lines = [f"/upload {picture}", "what does this graph show?", "/knowledge list"]
    done = subprocess.run([str(THREADBOT), "console"], input="\n".join(lines) + "\n", env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=START_TIMEOUT + 60)
    assert done.returncode == 0, done.stderr
    assert "Attached graph.png: it goes to the model with your next message." in done.stdout
    assert "The knowledge base is empty." in done.stdout
    [request] = fake.requests[first:]
    content = request["messages"][-1]["content"]
    assert content[0]["type"] == "image" and content[0]["source"]["media_type"] == "image/png"
    shown = Image.open(io.BytesIO(base64.b64decode(content[0]["source"]["data"])))
    assert shown.size == (640, 360)
    assert content[-1]["text"] == "what does this graph show?"
