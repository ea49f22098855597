"""DNNScaler's benchmark scripts, a package so that they share helpers (serving_overhead, capacity)
by ordinary imports. Run each as a module from the repository root, e.g.
`.venv/bin/python -m bench.ort_compare`; bench/README.md lists them."""
