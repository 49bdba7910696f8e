"""The read-only metadata API and the holders' gallery (`dnft api`)."""
