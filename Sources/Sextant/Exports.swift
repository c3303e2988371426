// The engine re-exports the vocabulary types so that `import Sextant` is all an application needs.
@_exported import SextantCore
@_exported import SextantFilter

