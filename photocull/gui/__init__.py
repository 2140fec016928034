"""photocull's Qt views: thin layers over the Qt-free packages (media, model, scoring, cull, training)."""
