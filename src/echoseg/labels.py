"""Label conventions shared by every module: 0 background, 1 LV, 2 MYO, 3 LA."""

NUM_CLASSES = 4
BACKGROUND = 0
LV, MYO, LA = 1, 2, 3
STRUCTURES: dict[str, int] = {"LV": LV, "MYO": MYO, "LA": LA}
VALID_LABELS = frozenset(range(NUM_CLASSES))
