//! Runnable examples of the ironnet SDK; see `docs/examples.md` for how to
//! run each one. This library is empty: the examples are the content.
