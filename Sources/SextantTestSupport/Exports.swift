// Tests and benchmarks that import the test support also get the dataset generators.
@_exported import SextantDatasets
