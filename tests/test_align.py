"""Tests of geogan_hf.align: FFHQ alignment, paste-back, landmark flips."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from geogan_hf.align import (
    CHIN_ROOM,
    FLIP_PERMUTATION_68,
    AlignedFace,
    align_face,
    face_crop_size,
    flip_landmarks,
    mirror_face,
    paste_back,
    turned_apart,
    turned_like,
)
from geogan_hf.geometry import face_turn
from geogan_hf.landmarks import detect_faces
from geogan_hf.samples import load_sample


def _to_photo(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def _to_crop(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    return _to_photo(inverse, points)


@pytest.fixture(scope="module")
def lenna():
    return load_sample("lenna")


def test_crop_landmarks_are_the_inverse_transform(lenna) -> None:
    aligned = align_face(lenna.image, lenna.landmarks, size=128)
    assert isinstance(aligned, AlignedFace)
    assert aligned.image.size == (128, 128) and aligned.image.mode == "RGB"
    assert aligned.size == 128 and aligned.matrix.shape == (2, 3)
    np.testing.assert_allclose(
        aligned.landmarks, _to_crop(aligned.matrix, lenna.landmarks), atol=1e-9
    )
    np.testing.assert_allclose(aligned.scale, face_crop_size(lenna.landmarks) / 128)
    # A similarity: orthogonal columns of equal length = scale.
    linear = aligned.matrix[:, :2]
    np.testing.assert_allclose(linear.T @ linear, np.eye(2) * aligned.scale**2, atol=1e-9)


def _rotated(image: Image.Image, landmarks: np.ndarray, angle: float, zoom: float):
    """The photo zoomed and rotated by ``angle`` degrees (counter-clockwise), with its landmarks."""
    w, h = image.size
    image = image.resize((round(w * zoom), round(h * zoom)), Image.Resampling.LANCZOS)
    points = (landmarks + 0.5) * np.array(image.size) / (w, h) - 0.5
    rotated = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    theta = np.deg2rad(angle)
    rot = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    centre_in = (np.array(image.size) - 1) / 2
    centre_out = (np.array(rotated.size) - 1) / 2
    return rotated, (points - centre_in) @ rot.T + centre_out


def test_alignment_is_invariant_to_scale_and_rotation(lenna) -> None:
    reference = align_face(lenna.image, lenna.landmarks, size=96)
    for angle, zoom in [(25.0, 0.7), (-40.0, 1.5)]:
        photo, points = _rotated(lenna.image, lenna.landmarks, angle, zoom)
        aligned = align_face(photo, points, size=96)
        np.testing.assert_allclose(aligned.landmarks, reference.landmarks, atol=1e-6)
        np.testing.assert_allclose(
            aligned.scale, reference.scale * zoom, rtol=5e-3
        )  # size rounding
        diff = np.abs(
            np.asarray(aligned.image, dtype=float) - np.asarray(reference.image, dtype=float)
        )
        assert diff[16:80, 16:80].mean() < 6  # the same face content in the same place
    # FFHQ framing: the eyes sit just above the centre, symmetric about the vertical axis.
    eyes = (reference.landmarks[36:42].mean(0) + reference.landmarks[42:48].mean(0)) / 2 / 96
    assert 0.45 < eyes[0] < 0.55 and 0.4 < eyes[1] < 0.5


def _blob_photo(points: np.ndarray, size: tuple[int, int], sigma: float) -> Image.Image:
    w, h = size
    yy, xx = np.mgrid[:h, :w]
    image = np.zeros((h, w))
    for x, y in points:
        image += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return Image.fromarray(np.repeat((image * 250)[..., None], 3, axis=2).astype(np.uint8))


def _centroid(image: np.ndarray, near: np.ndarray, radius: int) -> np.ndarray:
    x0, y0 = np.round(near).astype(int) - radius
    window = image[y0 : y0 + 2 * radius + 1, x0 : x0 + 2 * radius + 1].astype(float)
    yy, xx = np.mgrid[y0 : y0 + 2 * radius + 1, x0 : x0 + 2 * radius + 1]
    return np.array([(xx * window).sum(), (yy * window).sum()]) / window.sum()


@pytest.mark.parametrize("size", [32, 96, 400])  # strong reduction, mild reduction, enlargement
def test_image_content_lands_where_the_matrix_says(lenna, size) -> None:
    scale = face_crop_size(lenna.landmarks) / size
    sigma = 2.0 * max(scale, 1.0)  # ~2 crop pixels, so the blob survives the reduction
    offsets = np.array([[-40.3, -30.6], [35.8, -20.2], [5.5, 40.9]])
    spots = lenna.landmarks[30] + offsets  # around the nose tip, off the pixel grid
    radius = max(4, int(3 * sigma / scale))
    for spot in spots:  # one blob at a time, so that windows never overlap
        aligned = align_face(
            _blob_photo(spot[None], lenna.image.size, sigma), lenna.landmarks, size
        )
        crop = np.asarray(aligned.image)[..., 0]
        expected = _to_crop(aligned.matrix, spot[None])[0]
        assert np.hypot(*(_centroid(crop, expected, radius) - expected)) < 0.2


def test_outside_the_photo_is_reflected_not_black() -> None:
    landmarks = load_sample("lenna").landmarks
    # The face in the top-left corner of a small uniform photo: most of the square is outside.
    photo = Image.new("RGB", (200, 180), (10, 200, 30))
    shifted = landmarks - landmarks.mean(0) + (30, 40)
    crop = np.asarray(align_face(photo, shifted, size=64).image)
    assert np.abs(crop.astype(int) - (10, 200, 30)).max() <= 1


@pytest.mark.parametrize("size", [None, 1024])  # natural resolution, enlargement
def test_round_trip_with_a_full_mask_reproduces_the_face(lenna, size) -> None:
    size = size or round(face_crop_size(lenna.landmarks))
    aligned = align_face(lenna.image, lenna.landmarks, size=size)
    out = paste_back(lenna.image, aligned.image, aligned, np.ones((size, size)), feather=0)
    assert out.size == lenna.image.size and out is not lenna.image
    x0, y0 = lenna.landmarks.min(0).astype(int)
    x1, y1 = lenna.landmarks.max(0).astype(int)
    diff = np.abs(np.asarray(out, dtype=int) - np.asarray(lenna.image, dtype=int))[y0:y1, x0:x1]
    # Two bilinear resamplings blur fine texture a little; nothing moves.
    assert diff.mean() < 3.0 and np.percentile(diff, 99) < 20


def test_pasting_the_unedited_crop_back_changes_no_pixel(lenna) -> None:
    """The crop is the photo resampled, and pasting resamples it again (the test above: a
    blur). Given the crop as it was, a paste of an unchanged crop leaves the photo as it
    was, bit for bit, under a full mask."""
    size = round(face_crop_size(lenna.landmarks))
    aligned = align_face(lenna.image, lenna.landmarks, size=size)
    mask = np.ones((size, size))
    out = paste_back(lenna.image, aligned.image, aligned, mask, feather=0, unedited=aligned.image)
    assert np.array_equal(np.asarray(out), np.asarray(lenna.image))


def test_paste_back_keeps_the_photos_detail_only_where_the_edit_did_not_draw(lenna) -> None:
    size = 128
    aligned = align_face(lenna.image, lenna.landmarks, size=size)
    edited = np.asarray(aligned.image).copy()
    edited[40:80, 40:80] = (20, 200, 40)  # drawn: far from the photo's colours
    edited[90:110, 40:80] = np.minimum(edited[90:110, 40:80], 253) + 2  # a faint relight
    mask = np.ones((size, size))
    kept = np.asarray(paste_back(lenna.image, edited, aligned, mask, feather=0, unedited=aligned.image))
    plain = np.asarray(paste_back(lenna.image, edited, aligned, mask, feather=0))
    photo = np.asarray(lenna.image).astype(int)

    def to_photo(x: float, y: float) -> tuple[int, int]:
        return tuple(np.rint(_to_photo(aligned.matrix, np.array([[x, y]]))[0]).astype(int))

    x, y = to_photo(60, 60)  # the drawn patch: pasted as it is, with or without the photo's
    np.testing.assert_array_equal(kept[y - 5 : y + 5, x - 5 : x + 5], plain[y - 5 : y + 5, x - 5 : x + 5])
    x, y = to_photo(20, 20)  # untouched: the photo itself (plain: its blurred copy)
    assert np.array_equal(kept[y - 5 : y + 5, x - 5 : x + 5], photo[y - 5 : y + 5, x - 5 : x + 5])
    assert not np.array_equal(plain[y - 5 : y + 5, x - 5 : x + 5], photo[y - 5 : y + 5, x - 5 : x + 5])
    x, y = to_photo(60, 100)  # nudged: the photo's pixels, nudged
    change = kept[y - 3 : y + 3, x - 3 : x + 3].astype(int) - photo[y - 3 : y + 3, x - 3 : x + 3]
    assert np.abs(change - 2).max() <= 1
    with pytest.raises(ValueError, match="unedited"):
        paste_back(lenna.image, edited, aligned, mask, unedited=edited[:64])


def _random_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """Random rectangles of random weights (exact zeros around them)."""
    mask = np.zeros((size, size), np.float32)
    for weight in (1.0, rng.uniform(0.1, 1), rng.uniform(0.1, 1)):
        x0, y0 = rng.integers(0, size - 8, 2)
        w, h = rng.integers(8, size // 2, 2)
        mask[y0 : y0 + h, x0 : x0 + w] = weight
    return mask


def _bicubic(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bicubic samples of ``image (H, W, C)`` at pixel-centre coords whose 4x4
    neighbourhoods lie inside it, ``(P, C)``: Keys' kernel with a = -1, as PIL's affine
    transform has it."""

    def kernel(t: np.ndarray) -> np.ndarray:
        t = np.abs(t)
        near = (t - 2) * t * t + 1
        far = ((-t + 5) * t - 8) * t + 4
        return np.where(t <= 1, near, np.where(t < 2, far, 0.0))

    x, y = points[:, 0], points[:, 1]
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    value = np.zeros((len(points), image.shape[2]))
    for j in range(-1, 3):
        for i in range(-1, 3):
            weight = kernel(x - (x0 + i)) * kernel(y - (y0 + j))
            value += weight[:, None] * image[y0 + j, x0 + i]
    return value


def _bilinear(image: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear samples of ``image (H, W, C)`` at pixel-centre coords (edge-clamped), ``(P, C)``,
    and the 2x2 neighbourhoods ``(P, 4, C)``."""
    h, w = image.shape[:2]
    x, y = points[:, 0], points[:, 1]
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    xs = np.clip([x0, x0 + 1], 0, w - 1)
    ys = np.clip([y0, y0 + 1], 0, h - 1)
    corners = [image[ys[j], xs[i]] for j in (0, 1) for i in (0, 1)]
    value = (corners[0] * (1 - fx) + corners[1] * fx) * (1 - fy) + (
        corners[2] * (1 - fx) + corners[3] * fx
    ) * fy
    return value, np.stack(corners, axis=1)


@pytest.mark.parametrize("resample", [Image.Resampling.BILINEAR, Image.Resampling.BICUBIC])
@pytest.mark.parametrize("seed", range(4))
def test_paste_back_touches_only_the_mask(seed, resample) -> None:
    rng = np.random.default_rng(seed)
    landmarks = load_sample("takeo").landmarks
    photo = Image.fromarray(rng.integers(0, 256, (225, 150, 3), dtype=np.uint8))
    original = np.asarray(photo).copy()
    size = int(rng.choice([64, 128]))
    aligned = align_face(photo, landmarks, size=size)
    crop = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    mask = _random_mask(rng, size)
    feather = float(rng.choice([0.0, 0.02]))
    out = np.asarray(paste_back(photo, crop, aligned, mask, feather=feather, resample=resample))
    np.testing.assert_array_equal(np.asarray(photo), original)  # input untouched

    h, w = original.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    pixels = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(float)
    where = _to_crop(aligned.matrix, pixels)
    changed = (out != original).any(axis=2).ravel()
    if feather == 0:
        # Weight is 0 where all four bilinear neighbours of the mask are 0 (or outside the crop).
        inside = ((where > -0.5) & (where < size - 0.5)).all(axis=1)
        _, neighbours = _bilinear(mask[..., None], where)
        zero = ~inside | (neighbours.reshape(len(where), 4) == 0).all(axis=1)
        assert not changed[zero].any()
        # Where all neighbours are 1 the output is the warped crop.
        interior = ((where > 1) & (where < size - 2)).all(axis=1)
        full = interior & (neighbours.reshape(len(where), 4) == 1).all(axis=1)
        if resample == Image.Resampling.BICUBIC:
            expected = np.clip(_bicubic(crop.astype(float), where[full]), 0, 255)
        else:
            expected, _ = _bilinear(crop.astype(float), where[full])
        got = out.reshape(-1, 3)[full].astype(float)
        assert np.abs(got - expected).max() <= 1.0
        assert full.sum() > 0
    else:
        # Feathering spreads the weights, but never beyond the blur's reach (3 sigma + reduction + bilinear).
        reach = 3.5 * feather * size + 3
        rows, cols = np.nonzero(mask)
        near = (
            (where[:, 0] > cols.min() - reach)
            & (where[:, 0] < cols.max() + reach)
            & (where[:, 1] > rows.min() - reach)
            & (where[:, 1] < rows.max() + reach)
        )
        assert not changed[~near].any()
    assert changed.any()


def test_paste_back_with_an_empty_mask_returns_the_photo(lenna) -> None:
    aligned = align_face(lenna.image, lenna.landmarks, size=64)
    out = paste_back(lenna.image, aligned.image, aligned, np.zeros((64, 64)))
    assert np.array_equal(np.asarray(out), np.asarray(lenna.image)) and out is not lenna.image


def test_paste_back_rejects_bad_masks(lenna) -> None:
    aligned = align_face(lenna.image, lenna.landmarks, size=32)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        paste_back(lenna.image, aligned.image, aligned, np.full((32, 32), 2.0))
    with pytest.raises(ValueError, match="square"):
        paste_back(lenna.image, aligned.image, aligned, np.ones((32, 16)))
    with pytest.raises(ValueError, match="uint8"):
        paste_back(lenna.image, np.zeros((32, 32, 3)), aligned, np.ones((32, 32)))
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        align_face(lenna.image, lenna.landmarks[:5])


def test_flip_permutation_and_flip_landmarks(lenna) -> None:
    perm = np.array(FLIP_PERMUTATION_68)
    assert sorted(perm) == list(range(68)) and np.array_equal(perm[perm], np.arange(68))
    width = lenna.image.width
    flipped = flip_landmarks(lenna.landmarks, width)
    np.testing.assert_allclose(flip_landmarks(flipped, width), lenna.landmarks)
    # The left eye of the flipped face is the mirrored right eye of the original.
    mirrored_right = lenna.landmarks[42:48].mean(0) * (-1, 1) + (width - 1, 0)
    np.testing.assert_allclose(flipped[36:42].mean(0), mirrored_right)
    assert flipped[36:42, 0].mean() < flipped[42:48, 0].mean()


def test_flipped_landmarks_match_detection_on_the_mirrored_photo(lenna) -> None:
    face = detect_faces(lenna.image)[0]
    mirrored = detect_faces(ImageOps.mirror(lenna.image))[0]
    error = np.hypot(*(flip_landmarks(face.landmarks, lenna.image.width) - mirrored.landmarks).T)
    inter_ocular = np.hypot(*(face.landmarks[36:42].mean(0) - face.landmarks[42:48].mean(0)))
    assert np.median(error) / inter_ocular < 0.05


def test_mirror_face_is_the_mirrored_crop_placed_in_the_photo(lenna) -> None:
    aligned = align_face(lenna.image, lenna.landmarks, size=96)
    mirrored = mirror_face(aligned)
    assert np.array_equal(np.asarray(mirrored.image), np.asarray(ImageOps.mirror(aligned.image)))
    # each mirrored landmark lands, through the new placement, on its relabelled original
    perm = list(FLIP_PERMUTATION_68)
    np.testing.assert_allclose(
        _to_photo(mirrored.matrix, mirrored.landmarks), lenna.landmarks[perm], atol=1e-9
    )
    twice = mirror_face(mirrored)
    np.testing.assert_allclose(twice.matrix, aligned.matrix, atol=1e-12)
    np.testing.assert_allclose(twice.landmarks, aligned.landmarks, atol=1e-12)
    assert (mirrored.size, mirrored.scale) == (aligned.size, aligned.scale)


def test_face_turn_changes_sign_when_mirrored_and_turned_like_mirrors_only_then(lenna) -> None:
    """Lenna looks a third of the way to one side (about 0.34): mirrored, the other way."""
    turn = face_turn(lenna.landmarks)
    assert 0.15 < abs(turn) < 0.4
    mirrored = flip_landmarks(lenna.landmarks, lenna.image.width)
    assert face_turn(mirrored) == pytest.approx(-turn)
    assert turned_apart(lenna.landmarks, mirrored) and not turned_apart(mirrored, mirrored)
    # a frontal face (the turn under TURNED_APART) is not turned apart from either
    frontal = lenna.landmarks.copy()
    frontal[30] = (frontal[0] + frontal[16]) / 2
    assert not turned_apart(frontal, lenna.landmarks) and not turned_apart(frontal, mirrored)

    face = align_face(lenna.image, lenna.landmarks, size=64)
    other = mirror_face(face)
    same, was = turned_like(face, face)
    assert same is face and not was
    turned, was = turned_like(face, other)
    assert was and face_turn(turned.landmarks) * face_turn(other.landmarks) > 0


def test_a_crop_for_the_chin_keeps_room_under_it(lenna) -> None:
    """FFHQ's square ends at or above the chin of a long face or an open mouth: with
    ``chin_room`` the crop grows about its centre until the chin (point 8) lies that many
    inter-ocular distances inside its bottom edge; where FFHQ's leaves that much, it is
    FFHQ's, pixel for pixel."""
    plain = align_face(lenna.image, lenna.landmarks, size=128)
    roomy = align_face(lenna.image, lenna.landmarks, size=128, chin_room=CHIN_ROOM)
    np.testing.assert_array_equal(np.asarray(plain.image), np.asarray(roomy.image))
    # the same face with its chin dropped 0.6 inter-ocular distances (a wide-open mouth)
    points = np.asarray(lenna.landmarks, dtype=np.float64).copy()
    iod = np.linalg.norm(points[42:48].mean(0) - points[36:42].mean(0))
    points[8, 1] += 0.6 * iod
    for room in (0.0, CHIN_ROOM, 0.3):
        face = align_face(lenna.image, points, size=128, chin_room=room)
        crop_iod = np.linalg.norm(face.landmarks[42:48].mean(0) - face.landmarks[36:42].mean(0))
        under = (128 - 0.5 - face.landmarks[8, 1]) / crop_iod
        if room == 0.0:
            assert under < CHIN_ROOM  # FFHQ's square: the chin at its edge
        else:
            assert under == pytest.approx(room, abs=0.01)
            assert face_crop_size(points, room) > face_crop_size(points)
        # still a similarity onto the photo, about FFHQ's centre
        np.testing.assert_allclose(face.landmarks, _to_crop(face.matrix, points), atol=1e-9)
