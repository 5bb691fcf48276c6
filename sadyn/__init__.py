"""sadyn: dynamics of looped self-attention."""

__version__ = "0.1.0"
