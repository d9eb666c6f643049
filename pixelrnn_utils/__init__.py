"""PixelRNN course utilities."""
