"""Drives steward's /llm/openai door with the official OpenAI Python SDK.

Reads OPENAI_BASE_URL and OPENAI_API_KEY (the steward token) from the
environment, like any agent would, and prints one JSON object of results.
"""
import json
import os

import openai

client = openai.OpenAI()  # base URL and key from the environment
out = {}

r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])
out["chat_text"] = r.choices[0].message.content
out["chat_usage"] = r.usage.total_tokens

text, usage_chunks = "", 0
for chunk in client.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "stream"}], stream=True
):
    if chunk.usage is not None:
        usage_chunks += 1
    for choice in chunk.choices:
        text += choice.delta.content or ""
out["stream_text"] = text
out["stream_usage_chunks"] = usage_chunks

e = client.embeddings.create(model="text-embedding-3-small", input="embed me")
out["embedding_len"] = len(e.data[0].embedding)

try:
    client.chat.completions.create(model="gpt-imaginary-9", messages=[{"role": "user", "content": "x"}])
    out["unknown_price"] = "no error"
except openai.PermissionDeniedError as err:
    out["unknown_price"] = err.body.get("code") if isinstance(err.body, dict) else str(err.body)

try:
    client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}], max_completion_tokens=2_000_000
    )
    out["spend_cap"] = "no error"
except openai.RateLimitError as err:
    out["spend_cap"] = err.body.get("code") if isinstance(err.body, dict) else str(err.body)

print(json.dumps(out))
