"""Does AutoMLZero rediscover linear regression trained by gradient descent? And how fast?

    python benchmarks/automl_zero.py                          # about 5 minutes on 2 busy cores
    python benchmarks/automl_zero.py --scratch-seconds 1200   # a longer try from random programs
    python benchmarks/automl_zero.py --scratch-seconds 300 --scratch-sizes 10,2,8 --scratch-seeds 3   # the demo's sizes
    python benchmarks/automl_zero.py --skip-partial --scratch-setting menus --scratch-seconds 300 --scratch-seeds 3

The setting is the authors' 5-minute demo (run_demo.sh of google-research/automl_zero), in
Python: the six ops linear regression by SGD is made of (SGD_OPS), memory of 4 scalars and 3
vectors, F = 4 features, 10 linear tasks of 100 training and 100 validation examples (50 here),
regularized evolution with tournaments of 10 and mutate_prob 0.9, FEC on 10 + 10 examples.

1. References: the hand-written SGD program (its best learning rate of a small grid) and the
   empty program, on the search tasks and on 100 unseen tasks (another seed).
2. From a partial start: Setup (a learning rate) and Predict (s1 = dot(v0, v1)) given, Learn
   holding the error and the gradient but not the update (so it learns nothing: the empty
   program's fitness). Evolution must write the missing instruction, then tune the rate. Reported
   per seed: trials and seconds until the best is within 0.005 of the hand-written SGD's fitness,
   the FEC hits, the found program and its fitness on the unseen tasks.
3. From scratch: a population of random programs (the demo's start), fixed sizes (the demo's
   10, 2, 8 with --scratch-sizes 10,2,8), the demo's three mutations, for `--scratch-seconds` of
   this process's CPU time (one core, whatever else runs on the machine): the best fitness over
   time, the throughput, how many trials the pruned-program look-up answered without running
   anything, and what the throughput means for the authors' budget (up to 10^6 individuals).
   `--scratch-setting menus` is the authors' other linear example (a script of
   google-research/automl_zero headed "Linear example with early stopping"): each function its own
   menu (Setup: constants; Predict: dot; Learn: difference, product, scalar-vector product, vector
   sum), sizes 5, 1, 4, the rest as the demo. The programs are still random and the search must
   still find the error, the step, the gradient and the update, with their addresses, and tune the
   rate; the menus only take away the ops each function does not need.
   When the target is reached, the found program is also scored on 100 unseen tasks.
   `--restart-after N` gives AutoMLZero(restart_after=N): an experiment whose best has not risen
   by more than 0.001 in N trials is given up for a fresh random population (the authors' demo
   repeats whole experiments until one succeeds); each experiment's trials and best are listed,
   and a last line sums the seeds up (how many reached the target, and the CPU seconds they took).
"""
import argparse
import os
import time

from nasnb.automl_zero.liveness import prune

from nasnb.automl_zero import SGD_OPS, ProgramEvaluator
from nasnb.spaces.programs import LINEAR_REGRESSION_MENUS, ProgramSpace
from nasnb.strategies.automl_zero import AutoMLZero, fec_hits

SGD = """def Setup(): s2 = {lr}
def Predict(): s1 = dot(v0, v1)
def Learn(): s3 = s0 - s1; s3 = s2 * s3; v2 = s3 * v0; v1 = v1 + v2"""
PARTIAL = """def Setup(): s2 = 0.01
def Predict(): s1 = dot(v0, v1)
def Learn(): s3 = s0 - s1; s3 = s2 * s3; v2 = s3 * v0"""
TASKS = dict(task="linear", num_tasks=10, num_train=100, num_valid=50)


def references(space, search_tasks, unseen):
    rows = []
    for lr in (0.01, 0.03, 0.1, 0.2, 0.3):
        program = space.parse(SGD.format(lr=lr))
        rows.append((search_tasks(program)["fitness"], unseen(program)["fitness"], lr))
    best = max(rows)
    empty = search_tasks(space.empty())["fitness"], unseen(space.empty())["fitness"]
    for fitness, unseen_fitness, lr in rows:
        print(f"  hand-written SGD, lr {lr:<5}: fitness {fitness:.5f} (unseen tasks {unseen_fitness:.5f})")
    print(f"  empty program            : fitness {empty[0]:.5f} (unseen tasks {empty[1]:.5f})")
    return best[0]


def run_until(search, target: float, seconds: float, report_every: float = 10.0, clock=time.perf_counter):
    """Run until the best fitness reaches `target` or `seconds` pass on `clock`; (trials, seconds, reached, curve)."""
    start, curve, next_report = clock(), [], report_every
    while True:
        search.run(len(search.history) + 200, progress=False)
        elapsed, best = clock() - start, search.best().metrics["fitness"]
        if elapsed >= next_report:
            curve.append((len(search.history), round(elapsed), round(best, 5)))
            next_report += report_every
        if best >= target or elapsed > seconds:
            return len(search.history), elapsed, best >= target, curve


def partial_start(space, unseen, target, seeds, seconds):
    print(f"\n2. From a partial start (target: fitness >= {target:.5f}), {seconds:.0f} s at most per seed")
    for seed in seeds:
        evaluator = ProgramEvaluator(space, **TASKS)
        search = AutoMLZero(space, evaluator, population_size=100, tournament_size=10, init=PARTIAL, seed=seed)
        trials, seconds_used, reached, _ = run_until(search, target, seconds)
        best = search.best()
        found = space.parse(best.arch)
        print(f"  seed {seed}: {'reached' if reached else 'NOT reached'} after {trials} trials, {seconds_used:.0f} s "
              f"({trials / seconds_used:.0f} trials/s); best fitness {best.metrics['fitness']:.5f} at trial "
              f"{best.number}, unseen tasks {unseen(found)['fitness']:.5f}; {evaluator.evaluations} evaluated, "
              f"{fec_hits(search.history)} FEC hits")
        if seed == seeds[0]:
            print("  " + best.arch.replace("\n", "\n  "))


def from_scratch(target, seconds, seed, sizes=(4, 2, 6), setting="demo", unseen=None, restart_after=None):
    menus = LINEAR_REGRESSION_MENUS if setting == "menus" else None  # linear_regression_space() at sizes 5, 1, 4
    space = ProgramSpace(ops=SGD_OPS, matrices=0, init_sizes=sizes, max_sizes=sizes, function_ops=menus,
                         mutations=("alter_argument", "randomize_instruction", "randomize_function"))
    evaluator = ProgramEvaluator(space, **TASKS)
    search = AutoMLZero(space, evaluator, population_size=1000, tournament_size=10, init="random", seed=seed,
                        restart_after=restart_after)
    restarts = "" if restart_after is None else f", restart after {restart_after} trials without progress"
    print(f"\n3. From scratch ({setting} ops), seed {seed}: P=1000 random programs of sizes {space.init_sizes}, "
          f"{seconds:.0f} CPU s{restarts}")
    trials, seconds_used, reached, curve = run_until(search, target, seconds, report_every=max(10.0, seconds / 6),
                                                     clock=time.process_time)
    for n, t, best in curve:
        print(f"  {t:>5} s  {n:>7} trials  best fitness {best}")
    rate = trials / seconds_used
    print(f"  {'reached' if reached else 'not reached'}: {trials} trials in {seconds_used:.0f} s ({rate:.0f} trials/s, "
          f"{evaluator.evaluations} evaluated, {fec_hits(search.history)} FEC hits, {evaluator.exact_hits} of "
          f"them by the pruned program); "
          f"best {search.best().metrics['fitness']:.5f}")
    print(f"  at this rate the demo's budget of 10^6 individuals takes {1e6 / rate / 60:.0f} min; "
          f"random search, at the authors' 1 solution in 10^8 programs, {1e8 / rate / 86400:.1f} days")
    if restart_after is not None:
        for k, (first, last) in enumerate(experiment_spans(search.history)):
            best = max(t.metrics["fitness"] for t in search.history[first:last + 1] if t.ok)
            print(f"  experiment {k}: trials {first}-{last} ({last - first + 1}), best {best:.5f}")
    found = prune(space.parse(search.best().arch))
    if unseen is not None:
        print(f"  the best program on 100 unseen tasks: fitness {unseen(found)['fitness']:.5f}")
    print("  the best program without its dead code:")
    print("  " + str(found).replace("\n", "\n  "))
    return reached, seconds_used, trials


def experiment_spans(history):
    """(first, last) trial number of each experiment of a search with restarts."""
    spans = []
    for trial in history:
        k = trial.info.get("experiment", 0)
        if len(spans) <= k:
            spans.append([trial.number, trial.number])
        spans[k][1] = trial.number
    return spans


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the partial-start searches")
    parser.add_argument("--partial-seconds", type=float, default=60.0, help="at most this long per partial search")
    parser.add_argument("--scratch-seconds", type=float, default=120.0, help="CPU seconds of the search from scratch")
    parser.add_argument("--scratch-seeds", type=int, default=1, help="seeds of the searches from scratch")
    parser.add_argument("--scratch-first-seed", type=int, default=0, help="the first of those seeds")
    parser.add_argument("--scratch-sizes", default=None, help="Setup,Predict,Learn sizes (default 4,2,6; the demo: "
                        "10,2,8; --scratch-setting menus: 5,1,4)")
    parser.add_argument("--scratch-setting", choices=("demo", "menus"), default="demo",
                        help="demo: SGD_OPS in every function; menus: the authors' per-function menus")
    parser.add_argument("--skip-partial", action="store_true", help="skip the searches from a partial start")
    parser.add_argument("--restart-after", type=int, default=None,
                        help="AutoMLZero(restart_after=N) for the searches from scratch (default: no restarts)")
    args = parser.parse_args()
    print(f"AutoML-Zero rediscovery, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    space = ProgramSpace(ops=SGD_OPS, matrices=0, init_sizes=(0, 0, 0), max_sizes=(3, 2, 6))
    search_tasks = ProgramEvaluator(space, **TASKS, fec=False)
    unseen = ProgramEvaluator(space, **{**TASKS, "num_tasks": 100}, seed=1, fec=False)
    print("1. References (search tasks: 10 linear tasks, seed 0; unseen: 100 tasks, seed 1)")
    target = references(space, search_tasks, unseen) - 0.005
    if not args.skip_partial:
        partial_start(space, unseen, target, list(range(args.seeds)), args.partial_seconds)
    wide = ProgramSpace(ops=SGD_OPS, matrices=0, init_sizes=(0, 0, 0), max_sizes=(20, 10, 20))  # any found program
    unseen = ProgramEvaluator(wide, **{**TASKS, "num_tasks": 100}, seed=1, fec=False)
    sizes = args.scratch_sizes or ("5,1,4" if args.scratch_setting == "menus" else "4,2,6")
    runs = {}
    for seed in range(args.scratch_first_seed, args.scratch_first_seed + args.scratch_seeds):
        runs[seed] = from_scratch(target, args.scratch_seconds, seed, tuple(int(n) for n in sizes.split(",")),
                                  args.scratch_setting, unseen, args.restart_after)
    reached = {seed: run for seed, run in runs.items() if run[0]}
    print(f"\nfrom scratch: {len(reached)} of {len(runs)} seeds reached the target within {args.scratch_seconds:.0f} "
          f"CPU s; CPU s each: " + ", ".join(f"seed {seed} {run[1]:.0f}" for seed, run in reached.items()))


if __name__ == "__main__":
    main()
