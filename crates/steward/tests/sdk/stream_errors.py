"""Streams that steward ends with an error, read with the official SDKs.

A stream the upstream cuts (mock-upstream's `x-mock-fault: cut`), and one
that carries more output than was reserved (`x-mock-chunks` above
`max_tokens`), must surface in the SDK as the API's own error with
steward's message, not as a bare connection error. Prints one JSON object:
for each case, the exception class and its message.
"""
import json

import anthropic
import openai

out = {}


def outcome(err):
    return {"type": type(err).__name__, "message": str(err)}


oai = openai.OpenAI()
ant = anthropic.Anthropic()

try:
    text = ""
    for chunk in oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "cut me"}],
        stream=True,
        extra_headers={"x-mock-fault": "cut", "x-mock-chunks": "10"},
    ):
        for choice in chunk.choices:
            text += choice.delta.content or ""
    out["openai_cut"] = {"type": "none", "message": text}
except Exception as err:  # noqa: BLE001 - the class is what is checked
    out["openai_cut"] = outcome(err)

try:
    with ant.messages.stream(
        model="claude-haiku-4-5",
        max_tokens=64,
        messages=[{"role": "user", "content": "cut me"}],
        extra_headers={"x-mock-fault": "cut", "x-mock-chunks": "10"},
    ) as stream:
        out["anthropic_cut"] = {"type": "none", "message": "".join(stream.text_stream)}
except Exception as err:  # noqa: BLE001
    out["anthropic_cut"] = outcome(err)

try:
    for _ in oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "too long"}],
        stream=True,
        max_tokens=10,
        extra_headers={"x-mock-chunks": "50"},
    ):
        pass
    out["openai_exceeded"] = {"type": "none", "message": ""}
except Exception as err:  # noqa: BLE001
    out["openai_exceeded"] = outcome(err)

print(json.dumps(out))
