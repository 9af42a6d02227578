"""AutoML-Zero: regularized evolution of whole learning algorithms, from scratch.

Real, Liang, So & Le, "AutoML-Zero: Evolving Machine Learning Algorithms From Scratch", ICML 2020
(arXiv:2003.03384), Sec. 3-4. Where NAS searches the architectures of a fixed training
procedure, AutoML-Zero searches *programs*: Setup, Predict and Learn made of basic maths
instructions (nasnb/automl_zero/, nasnb/spaces/programs.py), judged by how well they learn new
tasks from nothing. The paper's first result is that evolution rediscovers linear regression
trained by gradient descent, and then two-layer networks with backpropagation.

The search is the regularized evolution of Real et al. (2019) (strategies/evolution.py): a
population of P programs, each cycle a tournament of T members drawn at random, the best one's
child evaluated and added, and the *oldest* member removed. What AutoML-Zero adds:

- the start: a population of P random programs (`init="random"`, as the authors' demo), or of
  empty programs (`init="empty"`, the paper's hardest setting), or of copies of a program you give
  (a partly written learner, to watch evolution finish it);
- the child: with probability `mutate_prob` (0.9 in the authors' demo) one of the paper's
  mutations of the parent (`space.mutate`: insert / remove an instruction, alter one argument,
  randomize one instruction or a whole component function), else an unchanged copy;
- functional equivalence checking (FEC, Sec. 4.2) in the evaluator (`ProgramEvaluator`): a child
  that computes what an earlier program computed gets that program's fitness without being
  evaluated. The strategy feeds the evaluator's cache with every result it is told, and rebuilds
  it from the history when a state is loaded, so a resumed search answers from the cache exactly
  where the uninterrupted one did: the same seed gives the same history.

- restarts (our option, as the authors' demo runs): with `restart_after=N`, an *experiment* whose
  best fitness has not risen by more than `restart_delta` in N trials is given up, and a new one
  starts from a fresh population of P random (or empty, or given) programs, the search's rng
  going on. The authors' run_demo.sh does the same with whole runs: experiments of up to 10^6
  individuals, repeated until one finds a program of fitness 0.9999 (`--max_experiments=0`), each
  on new tasks. Here the tasks stay the same, so the FEC cache stays valid across experiments and
  a restart re-finds the early programs without evaluating them. Why restart at all: a population
  that has all converged on a local optimum (on linear tasks, the Hebbian update
  ``v1 = s0 * lr * v0``, fitness ~0.82, which never uses the prediction) can need two mutations at
  once to leave it, and regularized evolution keeps only what scores better; a new random start
  is often the shorter way to SGD (measured in benchmarks/README.md).

Every trial's `info` has ``kind`` ("random" for the start, "mutation" after it), ``init`` or
``mutation`` (which start, which mutation: one of ProgramSpace's MUTATIONS or "copy"),
``sampled`` and ``parent`` as RegularizedEvolution writes them, so its population view works;
with restarts, also ``experiment`` (0, 1, ...), from which the view replays each restart.

On a space other than ProgramSpace (ToySpace in the contract test) it is plain aging evolution
with `mutate_prob`; `init="empty"` needs a space with `empty()`.
"""
from __future__ import annotations

from nasnb.checks import check_float, check_positive_int, check_probability, short
from nasnb.errors import InvalidValueError
from nasnb.history import Trial
from nasnb.strategies.evolution import RegularizedEvolution

INITS = ("random", "empty")


class AutoMLZero(RegularizedEvolution):
    """Regularized evolution of Setup/Predict/Learn programs (Real et al., 2020).

    Args:
        space: a `ProgramSpace` (any space with sample/mutate works too).
        evaluator: a `ProgramEvaluator(space, ...)` (fitness with FEC), or any arch -> metrics.
        population_size: P (the authors' demo: 1000; a few hundred suffices on our small tasks).
        tournament_size: T, members drawn with replacement per tournament (the demo: 10).
        init: "random", "empty", or a program (or its text) every initial member copies.
        mutate_prob: probability that a child is mutated rather than copied.
        metric: what evolution maximises ("fitness", as ProgramEvaluator reports it).
        restart_after: None (one experiment, the paper's), or N: start a new experiment after N
            trials in which the experiment's best did not rise by more than `restart_delta`.
        restart_delta: a rise in best fitness of more than this is progress (0.001: the small gains
            of tuning a constant on a plateau do not keep a stalled experiment alive).
    """

    panels = ("program", "progress", "population")

    def __init__(self, space, evaluator, *, population_size: int = 100, tournament_size: int = 10,
                 init="random", mutate_prob: float = 0.9, metric: str = "fitness", restart_after: int | None = None,
                 restart_delta: float = 1e-3, seed: int = 0):
        self.tournament_size = check_positive_int("tournament_size", tournament_size, example=10)
        self.mutate_prob = check_probability("mutate_prob", mutate_prob)
        self.init, self._init_arch = self._check_init(space, init)
        if restart_after is not None:
            restart_after = check_positive_int("restart_after", restart_after, example=100_000)
        self.restart_after = restart_after
        self.restart_delta = check_float("restart_delta", restart_delta, minimum=0.0, example=1e-3)
        super().__init__(space, evaluator, population_size=population_size, sample_size=self.tournament_size,
                         metric=metric, seed=seed)
        self.history.meta.update(tournament_size=self.tournament_size, mutate_prob=self.mutate_prob, init=self.init)
        if restart_after is not None:
            self.history.meta.update(restart_after=restart_after, restart_delta=self.restart_delta)
        self._new_experiment(0)
        self._sync_cache()

    @staticmethod
    def _check_init(space, init):
        if isinstance(init, str) and init in INITS:
            if init == "empty" and not callable(getattr(space, "empty", None)):
                raise InvalidValueError(f"init='empty' needs a space with empty programs (ProgramSpace), not "
                                        f"{short(space)}; use init='random'")
            return init, None
        if isinstance(init, str) and not init.lstrip().startswith("def "):
            raise InvalidValueError(f"init must be 'random', 'empty', a program or its text ('def Setup(): ...'), "
                                    f"got {short(init)}")
        try:
            arch = space.parse(init) if isinstance(init, str) else space.validate(init)
        except (ValueError, TypeError, KeyError) as err:
            raise type(err)(f"init is not a program of this space: {err}") from None
        return space.format(arch), arch

    def settings(self) -> dict:
        settings = {**super().settings(), "tournament_size": self.tournament_size, "mutate_prob": self.mutate_prob,
                    "init": self.init}
        if self.restart_after is not None:  # absent without restarts: older checkpoints stay valid
            settings.update(restart_after=self.restart_after, restart_delta=self.restart_delta)
        return settings

    # ---------------------------------------------------------------- experiments (restarts)

    def _new_experiment(self, number: int, first_trial: int = 0) -> None:
        """Experiment `number` begins at trial `first_trial`, with nobody alive."""
        self.experiment, self.experiment_start = number, first_trial
        self._level, self._progress_at = None, first_trial  # best fitness at the last progress, and when
        self.population, self._parsed = [], {}

    def _tag(self, info: dict) -> dict:
        return info if self.restart_after is None else {**info, "experiment": self.experiment}

    def _stalled(self, trial: Trial) -> bool:
        """Notes trial's fitness for this experiment; True when it has gone restart_after trials
        without progress (counted from its first trial, so the random start is part of it)."""
        value = self.fitness(trial.number)
        if self._level is None or value > self._level + self.restart_delta:
            self._level, self._progress_at = value, trial.number
        return trial.number + 1 - self._progress_at > self.restart_after

    # ---------------------------------------------------------------- ask

    def propose(self):
        starting = sum(p.info.get("kind") == "random" and p.info.get("experiment", 0) == self.experiment
                       for p in self._pending)
        if len(self.population) + starting < self.population_size or not self.population:
            if self.init == "random":
                return self.space.sample(self.rng), self._tag({"kind": "random", "init": "random", "sampled": [],
                                                               "parent": None})
            arch = self.space.empty() if self.init == "empty" else self._init_arch
            return arch, self._tag({"kind": "random", "init": "empty" if self.init == "empty" else "given",
                                    "sampled": [], "parent": None})

        draws = self.rng.integers(len(self.population), size=self.tournament_size)  # with replacement
        sampled = [self.population[k] for k in draws]
        parent = max(sampled, key=self.fitness)  # ties: the first drawn
        arch = self._arch(parent)
        if self.rng.random() >= self.mutate_prob:
            child, how = arch, "copy"
        elif callable(getattr(self.space, "mutate_with_kind", None)):
            child, how = self.space.mutate_with_kind(arch, self.rng)
        else:
            child, how = self.space.mutate(arch, self.rng), "mutate"
        return child, self._tag({"kind": "mutation", "mutation": how, "sampled": sampled, "parent": parent})

    def to_remove(self, members: list[int]) -> int:
        """As RegularizedEvolution's, without scanning P members per trial: the population is kept
        in order of birth (observe appends each new trial's number), so the oldest is the first."""
        if self.aging and members and members[0] < members[-1]:
            return members[0]
        return super().to_remove(members)

    # ---------------------------------------------------------------- tell, and the FEC cache

    def observe(self, trial: Trial) -> None:
        remember = getattr(self.evaluator, "remember", None)
        if callable(remember):
            remember(trial.metrics)
        if self.restart_after is None:
            super().observe(trial)
            return
        if trial.info.get("experiment") != self.experiment:
            return  # asked before the restart, told after (parallel runs): it joins no population
        super().observe(trial)
        if self._stalled(trial):
            self._new_experiment(self.experiment + 1, trial.number + 1)

    def _sync_cache(self) -> None:
        """The evaluator's FEC cache as this search's history makes it: emptied, then every told
        result remembered in order (the first program with a fingerprint keeps it)."""
        forget, remember = getattr(self.evaluator, "forget", None), getattr(self.evaluator, "remember", None)
        if callable(forget) and callable(remember):
            forget()
            for trial in self.history.trials:
                if trial.ok:
                    remember(trial.metrics)

    def _extra_state(self) -> dict:
        extra = super()._extra_state()
        if self.restart_after is not None:
            extra["experiment"] = [self.experiment, self.experiment_start, self._progress_at, self._level]
        return extra

    def _load_extra_state(self, state: dict) -> None:
        if self.restart_after is not None:
            number, start, progress_at, level = state["experiment"]
            self._new_experiment(int(number), int(start))
            self._progress_at, self._level = int(progress_at), None if level is None else float(level)
        else:
            self._new_experiment(0)
        super()._load_extra_state(state)  # the living population
        self._sync_cache()

    def state(self) -> dict:
        """RegularizedEvolution's snapshot plus the FEC counts and the best program's code."""
        best = self.best()
        return {**super().state(), "tournament_size": self.tournament_size, "mutate_prob": self.mutate_prob,
                "init": self.init, "fec_hits": fec_hits(self.history),
                "best_program": None if best is None else best.arch,
                "experiment": self.experiment, "experiment_start": self.experiment_start}


def fec_hits(history) -> int:
    """How many complete trials had the FEC fingerprint of an earlier one (their fitness was
    looked up, not evaluated), counted from the history alone."""
    seen, hits = set(), 0
    for trial in history.trials:
        key = trial.metrics.get("fec_hash") if trial.ok else None
        if isinstance(key, str):
            hits += key in seen
            seen.add(key)
    return hits

