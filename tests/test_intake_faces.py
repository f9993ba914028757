"""Face geometry for intake: detection on a scaled copy, yaw, headshot framing."""

from __future__ import annotations

import numpy as np
from intake_support import turned_head
from PIL import Image, ImageOps

from headshot.analysis.faces import detect_faces, estimate_yaw, identity_distance
from headshot.samples import grace_hopper
from headshot.training.cropping import face_mask, headshot_crop_box


def test_detection_on_a_scaled_copy_maps_back_to_the_full_photo():
    portrait = grace_hopper()
    big = portrait.resize((portrait.width * 3, portrait.height * 3), Image.Resampling.BICUBIC)
    small_face = detect_faces(portrait)[0]
    big_face = detect_faces(big, max_side=600)[0]
    assert np.allclose(big_face.box, np.array(small_face.box) * 3, atol=12)
    assert np.allclose(big_face.landmarks5, small_face.landmarks5 * 3, atol=12)
    assert identity_distance(big_face.embedding, small_face.embedding) < 0.2


def test_yaw_is_small_for_frontal_faces_large_for_turned_ones_and_mirrors_flip_it():
    portrait = grace_hopper()
    frontal = estimate_yaw(detect_faces(portrait)[0].landmarks5)
    mirrored = estimate_yaw(detect_faces(ImageOps.mirror(portrait))[0].landmarks5)
    turned = estimate_yaw(detect_faces(turned_head(portrait, -50))[0].landmarks5)
    assert abs(frontal) < 8 and abs(mirrored) < 8
    assert abs(turned) > 20
    tilted = estimate_yaw(detect_faces(portrait.rotate(8, resample=Image.Resampling.BICUBIC))[0].landmarks5)
    assert abs(tilted) < 10, "head tilt (roll) is not yaw"


def test_crop_is_square_with_headroom_and_stays_inside_the_photo():
    face = (400, 300, 600, 500)
    left, top, right, bottom = headshot_crop_box(face, (2000, 1500), face_fraction=0.45, face_center_y=0.55)
    assert right - left == bottom - top == round(200 / 0.45)
    assert (face[1] - top) > (bottom - face[3]), "more room above the face than below it"
    # Near the top-left corner the crop moves inside instead of padding.
    assert headshot_crop_box((10, 5, 210, 205), (2000, 1500), face_fraction=0.45, face_center_y=0.55)[:2] == (
        0,
        0,
    )
    # A photo narrower than the ideal crop gives the largest square that fits.
    box = headshot_crop_box((100, 200, 400, 500), (500, 900), face_fraction=0.45, face_center_y=0.55)
    assert box[2] - box[0] == 500 and box[0] == 0 and box[3] <= 900


def test_mask_covers_the_face_and_not_the_corners():
    mask = np.asarray(face_mask((400, 300, 600, 500), (289, 156, 733, 600), 64))
    assert mask.shape == (64, 64)
    centre = ((np.array([500, 400]) - [289, 156]) * 64 / 444).astype(int)
    assert mask[centre[1], centre[0]] == 255
    assert mask[0, 0] == mask[-1, -1] == mask[0, -1] == 0
