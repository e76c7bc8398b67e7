//! Asynchronous jobs over pgwire and UWS.
