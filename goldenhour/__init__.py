"""Golden Hour: missing-child alert and golden-hour response."""
