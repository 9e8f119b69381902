//! AWS JSON 1.1 plumbing: errors in AWS's shape and typed access to request
//! members, so that a missing or mistyped member answers like AWS does.

use serde_json::{Map, Value, json};

/// An AWS error: HTTP status, `__type` and message.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn client(message: impl Into<String>) -> Self {
        Self::new(400, "ClientException", message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidParameterException", message)
    }
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(400, "ValidationException", message)
    }
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new(400, "SerializationException", message)
    }
    pub fn unknown_operation(target: &str) -> Self {
        Self::new(
            400,
            "UnknownOperationException",
            format!("unknown operation {target}"),
        )
    }

    /// The response body.
    pub fn body(&self) -> Value {
        json!({ "__type": self.code, "message": self.message })
    }
}

pub type ApiResult = Result<Value, ApiError>;

/// A request body: a JSON object, read member by member.
pub struct Request {
    members: Map<String, Value>,
}

impl Request {
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let body = if body.is_empty() {
            b"{}".as_slice()
        } else {
            body
        };
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(members)) => Ok(Self { members }),
            Ok(_) => Err(ApiError::serialization(
                "the request body must be a JSON object",
            )),
            Err(e) => Err(ApiError::serialization(format!(
                "the request body is not valid JSON: {e}"
            ))),
        }
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.members.get(name).filter(|v| !v.is_null())
    }

    fn type_error(name: &str, expected: &str) -> ApiError {
        ApiError::serialization(format!("member `{name}` must be {expected}"))
    }

    pub fn missing(name: &str) -> ApiError {
        ApiError::validation(format!(
            "1 validation error detected: Value null at '{name}' failed to satisfy constraint: Member must not be null"
        ))
    }

    pub fn opt_str(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Self::type_error(name, "a string")),
        }
    }

    pub fn str(&self, name: &str) -> Result<&str, ApiError> {
        self.opt_str(name)?.ok_or_else(|| Self::missing(name))
    }

    pub fn opt_i64(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| Self::type_error(name, "an integer")),
            Some(_) => Err(Self::type_error(name, "an integer")),
        }
    }

    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(Self::type_error(name, "a boolean")),
        }
    }

    pub fn opt_strings(&self, name: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| Self::type_error(name, "a list of strings"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(Self::type_error(name, "a list of strings")),
        }
    }

    pub fn opt_object(&self, name: &str) -> Result<Option<&Map<String, Value>>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(o)) => Ok(Some(o)),
            Some(_) => Err(Self::type_error(name, "an object")),
        }
    }

    pub fn opt_array(&self, name: &str) -> Result<Option<&Vec<Value>>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(Self::type_error(name, "a list")),
        }
    }

    /// `[{key, value}]` tags.
    pub fn tags(&self, name: &str) -> Result<Vec<(String, String)>, ApiError> {
        let Some(items) = self.opt_array(name)? else {
            return Ok(Vec::new());
        };
        items
            .iter()
            .map(|t| {
                let key = t.get("key").and_then(Value::as_str);
                let value = t.get("value").and_then(Value::as_str).unwrap_or("");
                match key {
                    Some(k) if !k.is_empty() && k.len() <= 128 => {
                        Ok((k.to_owned(), value.to_owned()))
                    }
                    _ => Err(ApiError::invalid("Tag keys must be 1 to 128 characters")),
                }
            })
            .collect()
    }

    /// A member as given, whatever its type.
    pub fn member(&self, name: &str) -> Option<Value> {
        self.get(name).cloned()
    }

    /// The whole body, for operations that keep what they were given.
    pub fn into_members(self) -> Map<String, Value> {
        self.members
    }
}

/// Tags as AWS returns them.
pub fn tags_json(tags: &[(String, String)]) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect(),
    )
}

/// Sets or replaces tags by key, keeping the order of first appearance.
pub fn merge_tags(into: &mut Vec<(String, String)>, new: Vec<(String, String)>) {
    for (k, v) in new {
        match into.iter_mut().find(|(ek, _)| *ek == k) {
            Some(slot) => slot.1 = v,
            None => into.push((k, v)),
        }
    }
}
