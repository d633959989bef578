//! The MQTT endpoint.
