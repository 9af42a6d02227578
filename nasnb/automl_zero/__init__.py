"""AutoML-Zero (Real, Liang, So & Le, ICML 2020): programs, their interpreter and their evaluation.

    ops.py          the paper's basic maths ops (Table S1) as a table of numpy functions
    program.py      Instruction and Program records; programs as readable code and back
    tasks.py        generated linear and non-linear regression tasks
    interpreter.py  Setup / Predict / Learn run on tasks, fitness, FEC fingerprints
    compiled.py     the same interpreter, faster (ufuncs writing into memory views): bit-equal results
    evaluator.py    ProgramEvaluator: fitness with functional equivalence checking

The search space is nasnb.spaces.programs.ProgramSpace, the search nasnb.strategies.automl_zero.AutoMLZero.
"""
from nasnb.automl_zero.evaluator import ProgramEvaluator
from nasnb.automl_zero.ops import ALL_OPS, LINEAR_OPS, OPS, SGD_OPS
from nasnb.automl_zero.program import Instruction, Program, format_program, parse_program

__all__ = ["ALL_OPS", "LINEAR_OPS", "OPS", "SGD_OPS", "Instruction", "Program", "ProgramEvaluator",
           "format_program", "parse_program"]
