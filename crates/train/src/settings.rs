//! A method's settings: defaults, then a `--config` TOML file, then `--set key=value`s,
//! then every value checked against its range before anything trains.
//!
//! Each error names where the bad value came from (the file or `--set`), the key and what
//! the key allows, in one line.

use std::path::Path;

use crate::{TrainError, TrainOptions};

/// Settings that can say which of their values is out of range.
pub trait Validate {
    /// The first value out of its range, as `` `key` = value: must be ... ``.
    fn validate(&self) -> Result<(), TrainError>;
}

/// A method's settings: defaults, then the config file, then `--set`s, validated.
pub fn settings<T: serde::Serialize + serde::de::DeserializeOwned + Default + Validate>(
    opts: &TrainOptions,
) -> Result<T, TrainError> {
    settings_from(T::default(), opts)
}

/// [`settings`] starting from `base` instead of the type's defaults.
pub fn settings_from<T: serde::Serialize + serde::de::DeserializeOwned + Validate>(
    base: T,
    opts: &TrainOptions,
) -> Result<T, TrainError> {
    let mut table = crate::run::to_table(&base);
    if let Some(path) = &opts.config_file {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        let file: toml::Table =
            toml::from_str(&text).map_err(|e| TrainError::Setting(format!("{}: {e}", path.display())))?;
        merge(&mut table, file, "", path)?;
    }
    for s in &opts.sets {
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| TrainError::Setting(format!("--set `{s}`: expected key=value")))?;
        let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        let mut node = &mut table;
        let parts: Vec<&str> = key.trim().split('.').collect();
        for p in &parts[..parts.len() - 1] {
            node = match node.get_mut(*p) {
                Some(toml::Value::Table(t)) => t,
                _ => return Err(TrainError::Setting(format!("--set `{key}`: no such table `{p}`"))),
            };
        }
        let last = parts[parts.len() - 1];
        if !node.contains_key(last) {
            return Err(TrainError::Setting(format!("--set `{key}`: no such setting")));
        }
        node.insert(last.to_string(), value);
    }
    let cfg = T::deserialize(toml::Value::Table(table)).map_err(|e| {
        let why: Vec<String> = e.to_string().lines().map(|l| l.trim().to_string()).collect();
        TrainError::Setting(format!("invalid settings: {}", why.join(" ")))
    })?;
    cfg.validate()?;
    Ok(cfg)
}

/// Merge a config file's table into the settings, refusing keys the settings do not have.
fn merge(into: &mut toml::Table, from: toml::Table, prefix: &str, path: &Path) -> Result<(), TrainError> {
    for (k, v) in from {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b, &key, path)?,
            (Some(slot), v) => *slot = v,
            (None, _) => {
                return Err(TrainError::Setting(format!(
                    "{}: `{key}`: no such setting",
                    path.display()
                )))
            }
        }
    }
    Ok(())
}

/// The keys whose values differ between two settings tables, as `key = new (was old)`.
pub fn differences(new: &toml::Table, old: &toml::Table) -> Vec<String> {
    fn walk(prefix: &str, a: &toml::Table, b: &toml::Table, out: &mut Vec<String>) {
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match (a.get(k), b.get(k)) {
                (Some(toml::Value::Table(x)), Some(toml::Value::Table(y))) => walk(&key, x, y, out),
                (x, y) if x != y => out.push(format!(
                    "{key} = {} (was {})",
                    x.map_or("-".into(), |v| v.to_string()),
                    y.map_or("-".into(), |v| v.to_string())
                )),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk("", new, old, &mut out);
    out
}

fn out_of_range(key: &str, value: impl std::fmt::Display, allowed: &str) -> TrainError {
    TrainError::Setting(format!("`{key}` = {value}: must be {allowed}"))
}

/// A count that must be at least 1 (a size, a number of updates).
pub fn at_least_one(key: &str, value: usize) -> Result<(), TrainError> {
    if value >= 1 {
        Ok(())
    } else {
        Err(out_of_range(key, value, "at least 1"))
    }
}

/// A learning rate or other scale: finite and above 0.
pub fn positive(key: &str, value: f64) -> Result<(), TrainError> {
    if value > 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(out_of_range(key, value, "a finite number above 0"))
    }
}

/// A weight: finite and at least 0.
pub fn non_negative(key: &str, value: f64) -> Result<(), TrainError> {
    if value >= 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(out_of_range(key, value, "a finite number of at least 0"))
    }
}

/// Any finite number.
pub fn finite(key: &str, value: f64) -> Result<(), TrainError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(out_of_range(key, value, "a finite number"))
    }
}

/// A share or probability in `[lo, hi]`.
pub fn within(key: &str, value: f64, lo: f64, hi: f64) -> Result<(), TrainError> {
    if (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(out_of_range(key, value, &format!("in [{lo}, {hi}]")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_names_the_key_and_the_range() {
        assert_eq!(
            at_least_one("net.dim", 0).unwrap_err().to_string(),
            "`net.dim` = 0: must be at least 1"
        );
        assert_eq!(
            positive("lr", -0.1).unwrap_err().to_string(),
            "`lr` = -0.1: must be a finite number above 0"
        );
        assert!(positive("lr", f64::NAN).is_err() && positive("lr", f64::INFINITY).is_err());
        assert!(non_negative("alpha", 0.0).is_ok() && non_negative("alpha", -1e-9).is_err());
        assert!(within("gamma", 1.0, 0.0, 1.0).is_ok() && within("gamma", 1.01, 0.0, 1.0).is_err());
        assert!(within("gamma", f64::NAN, 0.0, 1.0).is_err());
    }

    #[test]
    fn differences_name_each_changed_key() {
        let old: toml::Table = toml::from_str("steps = 500\n[net]\ndim = 32\nheads = 4").unwrap();
        let new: toml::Table = toml::from_str("steps = 700\n[net]\ndim = 32\nheads = 4").unwrap();
        assert_eq!(differences(&new, &old), vec!["steps = 700 (was 500)".to_string()]);
        assert!(differences(&old, &old).is_empty());
    }
}
