"""What tests and benchmarks share (benchmarks never import tests/): plain-loop reference
implementations to check the vectorised code against."""
