"""Episode data: LeRobot-format datasets, training windows and normalization statistics."""

from adapt.data.episode import Episode
from adapt.data.reader import FeatureMap, LeRobotDataset
from adapt.data.writer import DatasetWriter

__all__ = ["DatasetWriter", "Episode", "FeatureMap", "LeRobotDataset"]
