"""Training with Lightning: the module, data loaders, the run loop and the pretraining entry point."""
