"""Drive upstream llama-server through Hangar's gateway with the official OpenAI client.

Usage: openai_llama.py BASE_URL TOKEN DEPLOYMENT MODEL...
For each MODEL (the deployment's name, m, m@alias, m:version): a plain and a streamed chat.
The weights are random and have no end-of-text token, so every answer runs to max_tokens:
that, and the usage the server counts, is what is checked. Then /v1/models must list
DEPLOYMENT. Prints one line per check; exits non-zero on failure.
"""

import sys

from openai import OpenAI

MAX_TOKENS = 6


def main() -> int:
    base_url, token, deployment = sys.argv[1:4]
    models = sys.argv[4:]
    client = OpenAI(base_url=f"{base_url}/v1", api_key=token)
    messages = [{"role": "user", "content": "hello"}]

    for model in models:
        reply = client.chat.completions.create(model=model, messages=messages, max_tokens=MAX_TOKENS)
        assert reply.choices[0].finish_reason == "length", reply
        assert reply.usage.completion_tokens == MAX_TOKENS, reply.usage
        print(f"{model}: plain ok")

        chunks = 0
        usage = None
        for chunk in client.chat.completions.create(
            model=model,
            messages=messages,
            max_tokens=MAX_TOKENS,
            stream=True,
            stream_options={"include_usage": True},
        ):
            if chunk.choices:
                chunks += 1
            if chunk.usage:
                usage = chunk.usage
        assert chunks >= MAX_TOKENS, chunks
        assert usage is not None and usage.completion_tokens == MAX_TOKENS, usage
        print(f"{model}: streamed ok, {chunks} chunks")

    listed = [m.id for m in client.models.list()]
    assert deployment in listed, listed
    print("models: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
