"""photocull's Qt views: thin layers over photocull.core."""
