"""Learning: personal models from the user's ratings, the head-training loop, metrics,
public datasets, the default (technical) model's trainer and its degradations, the demo."""
