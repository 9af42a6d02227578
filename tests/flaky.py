"""An evaluator that fails on purpose, for the tests of views and widgets (imported by them)."""


class Flaky:
    """ToySpace's score, except that every 3rd call raises and every 5th returns NaN (not both)."""

    def __init__(self, space):
        self.space, self.calls = space, 0

    def __call__(self, arch):
        self.calls += 1
        if self.calls % 3 == 0:
            raise RuntimeError(f"out of memory on call {self.calls}")
        if self.calls % 5 == 0:
            return {"val_accuracy": float("nan")}
        return self.space.evaluate(arch)
