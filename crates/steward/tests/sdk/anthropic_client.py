"""Drives steward's /llm/anthropic door with the official Anthropic Python SDK.

Reads ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY (the steward token) from the
environment and prints one JSON object of results.
"""
import json

import anthropic

client = anthropic.Anthropic()
out = {}

m = client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "hello"}])
out["text"] = "".join(block.text for block in m.content if block.type == "text")
out["output_tokens"] = m.usage.output_tokens

with client.messages.stream(
    model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "stream"}]
) as stream:
    out["stream_text"] = "".join(stream.text_stream)
    out["stream_output_tokens"] = stream.get_final_message().usage.output_tokens

try:
    client.messages.create(model="claude-imaginary-9", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    out["unknown_price"] = "no error"
except anthropic.PermissionDeniedError as err:
    out["unknown_price"] = err.body["error"]["reason"]

try:
    client.messages.create(model="claude-opus-4-1", max_tokens=20_000, messages=[{"role": "user", "content": "x"}])
    out["spend_cap"] = "no error"
except anthropic.RateLimitError as err:
    out["spend_cap"] = err.body["error"]["reason"]

print(json.dumps(out))
