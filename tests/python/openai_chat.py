"""Chat through Hangar's gateway with the official OpenAI Python client.

Usage: openai_chat.py BASE_URL TOKEN MODEL DIGEST
Checks a plain and a streamed completion; the streamed one must arrive in pieces, the
first well before the last. Prints one line per check; exits non-zero on failure.
"""

import sys
import time

from openai import OpenAI


def main() -> int:
    base_url, token, model, digest = sys.argv[1:5]
    client = OpenAI(base_url=f"{base_url}/v1", api_key=token)

    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello"}])
    content = reply.choices[0].message.content
    assert digest in content, content
    print("plain: ok")

    started = time.monotonic()
    arrivals = []
    pieces = []
    for chunk in client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello"}], stream=True
    ):
        arrivals.append(time.monotonic() - started)
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
    assert len(pieces) >= 8, pieces
    assert digest in "".join(pieces), pieces
    assert arrivals[0] + 0.5 < arrivals[-1], arrivals
    print(f"streamed: ok, first chunk after {arrivals[0]:.3f}s, last after {arrivals[-1]:.3f}s")

    models = [m.id for m in client.models.list()]
    assert model in models, models
    print("models: ok")

    try:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    except Exception as error:  # the client raises NotFoundError with our message
        assert "no deployment serves" in str(error), error
        print("unknown model: ok")
    else:
        raise AssertionError("an unknown model did not fail")
    return 0


if __name__ == "__main__":
    sys.exit(main())
