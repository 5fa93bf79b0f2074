"""Embodiment specs (what a robot is) and their kinematics (what its joints do)."""

from adapt.embodiment.loading import bundled_embodiments, load_embodiment, save_embodiment, spec_from_dict
from adapt.embodiment.spec import ActionSpace, Camera, EmbodimentSpec, Gripper, Joint, ProprioField

__all__ = [
    "ActionSpace",
    "Camera",
    "EmbodimentSpec",
    "Gripper",
    "Joint",
    "ProprioField",
    "bundled_embodiments",
    "load_embodiment",
    "save_embodiment",
    "spec_from_dict",
]
