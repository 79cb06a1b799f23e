"""The code that runs each stage kind; imported only when a stage of that kind runs."""
