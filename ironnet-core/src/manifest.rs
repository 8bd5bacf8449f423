//! Multi-document YAML (or JSON) manifests, as `ironnetctl apply -f`
//! reads them.

use serde::Deserialize;
use serde_json::Value;

use crate::registry::{DynObject, ObjectError};

/// Parses every non-empty document of `text` into a checked object;
/// namespaced objects without a namespace go to `default_namespace`.
pub fn parse_manifests(text: &str, default_namespace: &str) -> Result<Vec<DynObject>, ObjectError> {
    let mut out = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).map_err(|e| ObjectError::Syntax(e.to_string()))?;
        if value.is_null() {
            continue;
        }
        out.push(DynObject::from_value(value, default_namespace)?);
    }
    Ok(out)
}

/// An object as YAML.
pub fn to_yaml(value: &Value) -> String {
    serde_norway::to_string(value).unwrap_or_default()
}
