//! Directories written whole: a world or a run is built in a staging directory beside its
//! target and moved into place by rename, so a killed writer leaves the old directory or
//! the new one, never a mix of the two.

use std::io;
use std::path::{Path, PathBuf};

/// A directory's new content, staged beside it until [`StagedDir::commit`].
///
/// The staging directory is `.NAME.mmrf-staging-PID-NANOS` in the target's parent; what
/// a killed writer left there under the same prefix is removed when the next one starts.
/// Dropped without a commit, the staging directory is removed and the target is untouched.
#[derive(Debug)]
pub struct StagedDir {
    target: PathBuf,
    parent: PathBuf,
    prefix: String,
    staging: PathBuf,
    committed: bool,
}

impl StagedDir {
    /// Start staging the new content of `target` (which need not exist). A target that
    /// exists and is not a directory (a user's file) is refused: it is never moved aside.
    pub fn new(target: &Path) -> io::Result<StagedDir> {
        let target = std::path::absolute(target)?;
        if target.exists() && !target.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a directory: give another path (nothing was written)",
                    target.display()
                ),
            ));
        }
        let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "needs a directory of its own, not the root",
            ));
        };
        let parent = parent.to_path_buf();
        let prefix = format!(".{}.mmrf-", name.to_string_lossy());
        std::fs::create_dir_all(&parent)?;
        if let Ok(entries) = std::fs::read_dir(&parent) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let staging = parent.join(format!("{prefix}staging-{}-{stamp}", std::process::id()));
        // Made like any directory (0777 less the umask), unlike a 0700 temp directory.
        std::fs::create_dir(&staging)?;
        Ok(StagedDir {
            target,
            parent,
            prefix,
            staging,
            committed: false,
        })
    }

    /// Where to write the new content.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// Move the staged content into place; the old directory, if any, is removed.
    pub fn commit(mut self) -> io::Result<()> {
        let retired = self.parent.join(format!("{}old-{}", self.prefix, std::process::id()));
        let had_old = self.target.exists();
        if had_old {
            std::fs::rename(&self.target, &retired)?;
        }
        std::fs::rename(&self.staging, &self.target)?;
        self.committed = true;
        if had_old {
            let _ = std::fs::remove_dir_all(&retired);
        }
        Ok(())
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

/// Whether `dir` exists and holds anything.
pub fn is_nonempty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_replaces_whole_and_drop_leaves_the_target() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("t");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("old"), "1").unwrap();
        {
            let s = StagedDir::new(&target).unwrap();
            std::fs::write(s.path().join("new"), "2").unwrap();
        }
        assert!(target.join("old").exists(), "an uncommitted stage leaves the target");
        let s = StagedDir::new(&target).unwrap();
        std::fs::write(s.path().join("new"), "2").unwrap();
        s.commit().unwrap();
        assert!(!target.join("old").exists() && target.join("new").exists());
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("t")]);
    }

    #[test]
    fn a_file_in_the_way_is_refused_and_left_as_it_was() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        std::fs::write(&file, "mine").unwrap();
        let e = StagedDir::new(&file).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(e.to_string().contains("is not a directory"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f")], "nothing beside it either");
    }
}
