"""Solutions to the notebooks' exercises, one module per paper notebook, each tested in
``tests/test_solutions.py`` so it never drifts from the library. Try the exercise first."""
