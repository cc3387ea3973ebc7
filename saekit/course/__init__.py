"""The notebook course: exercise checks for learners, and the generator of the notebooks.

In a notebook, ``from saekit.course import checks`` and call ``checks.<exercise>(your_function)``
after writing an exercise: it prints a line when the function is right and raises
[`ExerciseFailed`][saekit.course.checks.ExerciseFailed] with a hint when it is not. Course maintainers
regenerate the solution and exercise notebooks from ``notebooks/source/`` with
``python -m saekit.course`` (see [`saekit.course.generate`][saekit.course.generate]). A learner stuck on an
exercise skips it with ``name = use_solution("exercise")``, which prints the reference solution
and returns it (see [`saekit.course.solutions`][saekit.course.solutions]).
"""

from saekit.course import checks
from saekit.course.checks import ExerciseFailed
from saekit.course.solutions import use_solution

__all__ = ["ExerciseFailed", "checks", "use_solution"]
