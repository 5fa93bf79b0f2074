"""The `dreamzero` model family: NVIDIA DreamZero's Wan-based World Action Model (14B, 5B) behind the model
protocol, loaded from DreamZero's own checkpoint folders and adapted with the same commands as `wam-dit`."""
