import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from fkp.data.io import (
    check_images_exist,
    decode_image,
    load_images,
    person_of,
    read_keypoints_csv,
)
from fkp.errors import FkpError

HEADER = "," + ",".join(str(i) for i in range(136)) + "\n"


def _row(name: str, value: str = "10.0") -> list[str]:
    """A face whose 68 points spread over 3 pixels from (value, value)."""
    return [name] + [f"{float(value) + (i // 2) % 3:g}" for i in range(136)]


def _write(path: Path, rows: list[list[str]]) -> Path:
    path.write_text(HEADER + "".join(",".join(r) + "\n" for r in rows))
    return path


def test_reads_the_real_training_csv(data_dir):
    table = read_keypoints_csv(data_dir / "training_frames_keypoints.csv")
    assert len(table) == 3462
    assert table.keypoints.shape == (3462, 68, 2) and table.keypoints.dtype == np.float32
    assert table.names[0] == "Luis_Fonsi_21.jpg"
    assert table.keypoints[0, 0].tolist() == [45.0, 98.0]
    assert table.lines[0] == 2  # line 1 is the header


def test_wrong_column_count_names_the_line(tmp_path):
    rows = [_row("a_01.jpg"), _row("b_01.jpg")[:-1]]
    with pytest.raises(FkpError, match=r"bad\.csv, line 3: 136 columns, expected 137"):
        read_keypoints_csv(_write(tmp_path / "bad.csv", rows))
    rows = [_row("a_01.jpg") + ["1.0"]]
    with pytest.raises(FkpError, match=r"line 2: 138 columns"):
        read_keypoints_csv(_write(tmp_path / "bad.csv", rows))


def test_non_numeric_and_empty_cells_name_line_and_column(tmp_path):
    row = _row("a_01.jpg")
    row[4] = "abc"  # column 5 = y of keypoint 1
    with pytest.raises(FkpError, match=r"line 3, column 5 \(y of keypoint 1\): 'abc' is not"):
        read_keypoints_csv(_write(tmp_path / "bad.csv", [_row("b_01.jpg"), row]))
    row = _row("a_01.jpg")
    row[1] = ""
    with pytest.raises(FkpError, match=r"line 2, column 2 \(x of keypoint 0\): empty cell"):
        read_keypoints_csv(_write(tmp_path / "bad.csv", [row]))
    row = _row("a_01.jpg")
    row[136] = "nan"
    with pytest.raises(FkpError, match=r"column 137 \(y of keypoint 67\)"):
        read_keypoints_csv(_write(tmp_path / "bad.csv", [row]))


def test_duplicate_name_names_both_lines(tmp_path):
    rows = [_row("a_01.jpg"), _row("b_01.jpg"), _row("a_01.jpg")]
    with pytest.raises(FkpError, match=r"line 4, column 1: image 'a_01.jpg' .*first on line 2"):
        read_keypoints_csv(_write(tmp_path / "dup.csv", rows))


def test_missing_images_are_all_listed(tmp_path):
    (tmp_path / "img").mkdir()
    cv2.imwrite(str(tmp_path / "img" / "b_01.jpg"), np.zeros((20, 20, 3), np.uint8))
    table = read_keypoints_csv(
        _write(tmp_path / "k.csv", [_row("a_01.jpg"), _row("b_01.jpg"), _row("c_02.jpg")])
    )
    with pytest.raises(FkpError, match=r"2 listed images missing .*a_01\.jpg, c_02\.jpg"):
        check_images_exist(table, tmp_path / "img")


def test_points_outside_the_image_are_kept_and_counted_once(tmp_path, caplog):
    (tmp_path / "img").mkdir()
    for name in ["a_01.jpg", "b_01.jpg"]:
        cv2.imwrite(str(tmp_path / "img" / name), np.zeros((20, 30, 3), np.uint8))
    table = read_keypoints_csv(
        _write(tmp_path / "k.csv", [_row("a_01.jpg", "25"), _row("b_01.jpg", "5")])
    )
    with caplog.at_level(logging.WARNING, logger="fkp.data"):
        images = load_images(table, tmp_path / "img")
    (message,) = [r.getMessage() for r in caplog.records]  # once, as one line in the log
    assert "1 of 2 rows have keypoints outside their image (kept as they are)" in message
    assert len(images) == 2 and table.keypoints[0, 0, 1] == 25


def test_real_training_set_has_six_rows_outside(data_dir, caplog):
    table = read_keypoints_csv(data_dir / "training_frames_keypoints.csv")
    with caplog.at_level(logging.WARNING, logger="fkp.data"):
        load_images(table, data_dir / "training")
    (message,) = [r.getMessage() for r in caplog.records]
    assert "6 of 3462 rows" in message


def _rgb_test_image() -> np.ndarray:
    image = np.zeros((16, 24, 3), np.uint8)
    image[:, :8] = (255, 0, 0)  # red, in RGB
    image[:, 8:16] = (0, 255, 0)
    image[:, 16:] = (0, 0, 255)
    return image


@pytest.mark.parametrize(
    "ext,flags",
    [(".png", "rgba"), (".webp", "lossless"), (".png", "rgb"), (".jpg", "jpeg")],
)
def test_decodes_by_content_to_rgb(tmp_path, ext, flags):
    rgb = _rgb_test_image()
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if flags == "rgba":
        bgr = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
    params = [cv2.IMWRITE_WEBP_QUALITY, 101] if flags == "lossless" else []
    ok, data = cv2.imencode(ext, bgr, params)
    path = tmp_path / "frame_01.jpg"  # the name lies about the format, as in the release
    path.write_bytes(data.tobytes())
    out = decode_image(path)
    assert out.shape == (16, 24, 3) and out.dtype == np.uint8
    if flags == "jpeg":  # lossy, and blurred at colour edges: compare the band centres
        out, rgb = out[:, [3, 12, 20]], rgb[:, [3, 12, 20]]
    assert np.abs(out.astype(int) - rgb).max() <= (40 if flags == "jpeg" else 0)


def test_decodes_grayscale_and_16_bit(tmp_path):
    gray = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (8, 1))
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    out = decode_image(tmp_path / "g.png")
    assert out.shape == (8, 16, 3) and (out[..., 0] == gray).all() and (out[..., 2] == gray).all()
    deep = gray.astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / "d.png"), np.dstack([deep] * 3))
    out = decode_image(tmp_path / "d.png")
    assert out.dtype == np.uint8 and (out[..., 1] == gray).all()


def test_shared_webp_decodes_like_the_release_png(data_dir, tmp_path):
    image = decode_image(data_dir / "training" / "Luis_Fonsi_21.jpg")
    assert image.ndim == 3 and image.shape[2] == 3
    # re-encode as the release did (PNG with alpha under a .jpg name): same pixels back
    bgra = cv2.cvtColor(image, cv2.COLOR_RGB2BGRA)
    ok, data = cv2.imencode(".png", bgra)
    (tmp_path / "x.jpg").write_bytes(data.tobytes())
    assert (decode_image(tmp_path / "x.jpg") == image).all()


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n broken"])
def test_corrupt_file_error_names_it(tmp_path, content):
    path = tmp_path / "broken_01.jpg"
    path.write_bytes(content)
    with pytest.raises(FkpError, match=r"broken_01\.jpg: not a readable image"):
        decode_image(path)


def test_truncated_real_image_is_an_error(data_dir, tmp_path):
    src = data_dir / "training" / "Luis_Fonsi_21.jpg"
    data = src.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(FkpError, match="cut.jpg"):
        decode_image(tmp_path / "cut.jpg")
    shutil.copy(src, tmp_path / "ok.jpg")
    assert decode_image(tmp_path / "ok.jpg").shape[2] == 3


def test_person_is_the_name_without_the_frame_number():
    assert person_of("Luis_Fonsi_21.jpg") == "Luis_Fonsi"
    assert person_of("T_Boone_Pickens_00.jpg") == "T_Boone_Pickens"
    assert person_of("photo.png") == "photo"
