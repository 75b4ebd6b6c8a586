import http.server
import threading
import zipfile
from pathlib import Path

import pytest

from fkp.data.download import RELEASE_SHA256, TEST_CSV, TRAIN_CSV, ensure_dataset
from fkp.errors import FkpError


def _release_zip(data_dir: Path, path: Path, images: int = 3, tamper: bool = False) -> Path:
    """A zip in the release's layout: the real CSVs (so the real checksums apply), few images."""
    with zipfile.ZipFile(path, "w") as zf:
        for csv_name, folder in [(TRAIN_CSV, "training"), (TEST_CSV, "test")]:
            data = (data_dir / csv_name).read_bytes()
            zf.writestr(csv_name, data + b"x" if tamper and csv_name == TEST_CSV else data)
            for image in sorted((data_dir / folder).iterdir())[:images]:
                zf.write(image, f"{folder}/{image.name}")
    return path


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b""
    truncate = False

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body[: len(self.body) // 2] if self.truncate else self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """An HTTP server on 127.0.0.1 serving whatever bytes the test sets."""
    handler = type("Handler", (_Handler,), {})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{httpd.server_address[1]}/train-test-data.zip"
    httpd.shutdown()
    httpd.server_close()


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir()) if parent.exists() else []


def test_downloads_verifies_and_installs(data_dir, tmp_path, server):
    handler, url = server
    handler.body = _release_zip(data_dir, tmp_path / "release.zip").read_bytes()
    target = tmp_path / "data" / "youtube_faces"
    assert ensure_dataset(target, url=url) == target
    assert (target / TRAIN_CSV).read_bytes() == (data_dir / TRAIN_CSV).read_bytes()
    assert len(list((target / "training").iterdir())) == 3
    assert _leftovers(target.parent) == ["youtube_faces"]  # no partial folders left behind
    # present now: a second call does not download again
    handler.body = b""
    assert ensure_dataset(target, url=url) == target


def test_checksum_mismatch_installs_nothing(data_dir, tmp_path, server):
    handler, url = server
    handler.body = _release_zip(data_dir, tmp_path / "r.zip", tamper=True).read_bytes()
    target = tmp_path / "data" / "youtube_faces"
    with pytest.raises(
        FkpError, match=rf"{TEST_CSV} has SHA-256 .*expected {RELEASE_SHA256[TEST_CSV]}"
    ):
        ensure_dataset(target, url=url)
    assert _leftovers(target.parent) == []


def test_interrupted_download_installs_nothing(data_dir, tmp_path, server):
    handler, url = server
    handler.body = _release_zip(data_dir, tmp_path / "r.zip").read_bytes()
    handler.truncate = True  # the connection closes half way
    target = tmp_path / "data" / "youtube_faces"
    with pytest.raises(FkpError, match=r"could not download http://127\.0\.0\.1.*data\.url="):
        ensure_dataset(target, url=url)
    assert _leftovers(target.parent) == []


def test_unreachable_server_says_how_to_work_offline(tmp_path):
    with pytest.raises(FkpError, match=r"could not download .*unzip it into.*FKP_DATA_DIR"):
        ensure_dataset(tmp_path / "data" / "yf", url="http://127.0.0.1:9/none.zip")
    assert list(tmp_path.iterdir()) == []  # no empty data/ folder left behind


def test_not_a_zip_installs_nothing(tmp_path, server):
    handler, url = server
    handler.body = b"<html>not found</html>"
    with pytest.raises(FkpError, match="not a readable zip"):
        ensure_dataset(tmp_path / "d" / "yf", url=url)
    assert _leftovers(tmp_path / "d") == []


def test_local_zip_file(data_dir, tmp_path):
    archive = _release_zip(data_dir, tmp_path / "release.zip")
    target = ensure_dataset(tmp_path / "yf", url=str(archive))
    assert (target / TEST_CSV).is_file() and archive.is_file()


def test_missing_folder_without_download_says_how_to_fix(tmp_path):
    with pytest.raises(FkpError, match=r"data folder not found; set FKP_DATA_DIR"):
        ensure_dataset(tmp_path / "nowhere", download=False)
