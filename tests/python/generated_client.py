"""Push a model through a client generated from Hangar's OpenAPI document, as a team would.

Usage: generated_client.py BASE_URL TOKEN MODEL
with the generated package `hangar_client` on PYTHONPATH (tests/api/generated_client.rs makes
it with openapi-python-client). Creates MODEL, a draft, uploads one file as a raw body and a
bigger one in parts through an upload session, publishes, points the alias `prod` at the
version, and downloads both files (one by a range) comparing them with what was sent.
Prints one line per step; exits non-zero on the first failure.
"""

import hashlib
import os
import sys
from http import HTTPStatus
from io import BytesIO

from hangar_client import AuthenticatedClient
from hangar_client.api.aliases import get_alias, set_alias
from hangar_client.api.files import download_file, list_files, upload_file
from hangar_client.api.models import create_model, get_model
from hangar_client.api.uploads import complete_upload, create_upload, put_part
from hangar_client.api.versions import create_version, publish_version
from hangar_client.models import CreateModel, CreateUpload, CreateVersion, SetAlias
from hangar_client.types import File

MIB = 1024 * 1024


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def expect(response, status: HTTPStatus, step: str):
    """The parsed body of `response`, after checking it is `status`."""
    if response.status_code != status:
        raise SystemExit(f"{step}: {response.status_code} instead of {status}: {response.content!r}")
    return response.parsed


def main() -> int:
    base_url, token, model = sys.argv[1:4]
    client = AuthenticatedClient(base_url=base_url, token=token, raise_on_unexpected_status=True)
    config = b'{"model_type": "demo"}\n'
    # Over two parts of 1 MiB and a short last one, and not text.
    weights = os.urandom(2 * MIB + 12345)

    created = expect(
        create_model.sync_detailed(client=client, body=CreateModel(name=model, description="generated client")),
        HTTPStatus.CREATED,
        "create model",
    )
    assert created.name == model, created
    print("model: ok")

    draft = expect(
        create_version.sync_detailed(model, client=client, body=CreateVersion(version="1")),
        HTTPStatus.CREATED,
        "create draft",
    )
    assert draft.version == "1" and draft.state == "draft", draft
    print("draft: ok")

    stored = expect(
        upload_file.sync_detailed(
            model, "1", "config/config.json", client=client, body=File(payload=BytesIO(config)), digest=digest(config)
        ),
        HTTPStatus.CREATED,
        "upload",
    )
    assert stored.path == "config/config.json" and stored.size == len(config), stored
    assert stored.digest == digest(config), stored
    print("upload: ok")

    session = expect(
        create_upload.sync_detailed(
            model,
            "1",
            client=client,
            body=CreateUpload(path="weights.bin", size=len(weights), digest=digest(weights), part_size=MIB),
        ),
        HTTPStatus.CREATED,
        "open an upload session",
    )
    assert session.parts == 3 and session.missing == [0, 1, 2], session
    for part in session.missing:
        piece = weights[part * MIB : (part + 1) * MIB]
        expect(
            put_part.sync_detailed(
                model, "1", session.id, part, client=client, body=File(payload=BytesIO(piece)), digest=digest(piece)
            ),
            HTTPStatus.OK,
            f"part {part}",
        )
    completed = expect(
        complete_upload.sync_detailed(model, "1", session.id, client=client),
        HTTPStatus.CREATED,
        "complete the upload session",
    )
    assert completed.path == "weights.bin" and completed.digest == digest(weights), completed
    print("upload session: ok")

    listed = expect(list_files.sync_detailed(model, "1", client=client), HTTPStatus.OK, "list files")
    assert sorted(f.path for f in listed.items) == ["config/config.json", "weights.bin"], listed

    published = expect(publish_version.sync_detailed(model, "1", client=client), HTTPStatus.OK, "publish")
    assert published.state == "ready" and published.manifest_digest, published
    print("publish: ok")

    expect(
        set_alias.sync_detailed(model, "prod", client=client, body=SetAlias(version="1")),
        HTTPStatus.CREATED,
        "set alias",
    )
    alias = expect(get_alias.sync_detailed(model, "prod", client=client), HTTPStatus.OK, "get alias")
    assert alias.version == "1", alias
    summary = expect(get_model.sync_detailed(model, client=client), HTTPStatus.OK, "get model")
    assert summary.latest_version == "1", summary
    print("alias: ok")

    for path, sent in [("config/config.json", config), ("weights.bin", weights)]:
        file = expect(download_file.sync_detailed(model, alias.version, path, client=client), HTTPStatus.OK, path)
        assert file.payload.read() == sent, f"{path} came back different"
    head = expect(
        download_file.sync_detailed(model, alias.version, "weights.bin", client=client, range_="bytes=0-3"),
        HTTPStatus.PARTIAL_CONTENT,
        "range",
    )
    assert head.payload.read() == weights[:4]
    print("download: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
