"""What the tests and the benchmarks share (servers on free ports, ...): not part of the product."""
