//! ironnet's route distribution: the metalbond protocol v1 codec, a sans-IO
//! connection state machine, the route reflector server and a client library.
//!
//! Status: not implemented yet; tracked as its own issue.
