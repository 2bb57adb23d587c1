//! A profile's industry, shared: a million tenants name a handful of industries, so
//! each distinct name is allocated once per thread and every profile holds a
//! reference to it.

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::Arc;

/// Distinct names a thread shares; names beyond get an allocation of their own, so
/// that an input with a new industry in every profile cannot grow the set without
/// bound.
const SHARED_NAMES: usize = 1024;

thread_local! {
    static NAMES: RefCell<HashSet<Arc<str>>> = RefCell::new(HashSet::new());
}

/// An industry name, e.g. `retail`. Compares, hashes and prints as the name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Industry(Arc<str>);

impl Industry {
    /// The industry `name`, sharing the allocation of an equal name this thread made
    /// before.
    pub fn new(name: &str) -> Self {
        NAMES.with(|names| {
            let mut names = names.borrow_mut();
            if let Some(shared) = names.get(name) {
                return Self(Arc::clone(shared));
            }
            let name: Arc<str> = name.into();
            if names.len() < SHARED_NAMES {
                names.insert(Arc::clone(&name));
            }
            Self(name)
        })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Industry {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Industry {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Industry {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

impl From<String> for Industry {
    fn from(name: String) -> Self {
        Self::new(&name)
    }
}

impl From<Industry> for String {
    fn from(industry: Industry) -> Self {
        industry.as_str().to_owned()
    }
}

impl std::fmt::Debug for Industry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl std::fmt::Display for Industry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Industry {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Industry {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(Self::new(&name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_names_share_one_allocation_up_to_a_bound() {
        let a = Industry::new("retail");
        let b = Industry::from(String::from("retail"));
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(&*a, "retail");
        assert_ne!(a, Industry::new("media"));
        // Past the bound, names are still right, only not shared.
        let many: Vec<Industry> = (0..SHARED_NAMES + 10)
            .map(|i| Industry::new(&format!("industry-{i}")))
            .collect();
        let again = Industry::new(&format!("industry-{}", SHARED_NAMES + 5));
        assert_eq!(again, many[SHARED_NAMES + 5]);
        NAMES.with(|names| assert_eq!(names.borrow().len(), SHARED_NAMES));
    }

    #[test]
    fn serializes_as_its_name() {
        let json = serde_json::to_string(&Industry::new("a \"b\"")).unwrap();
        assert_eq!(json, r#""a \"b\"""#);
        let back: Industry = serde_json::from_str(&json).unwrap();
        assert_eq!(&*back, "a \"b\"");
    }
}
