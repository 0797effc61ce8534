//! `mmrf train --workers N`: data-parallel training in N processes started by OpenMPI's
//! `mpirun`, each one `mmrf train --distributed` joining the job
//! ([`mmrf_train::distributed`]).
//!
//! MPI, not a protocol of our own: it already spans machines (`mpirun --host A,B`), starts
//! and stops the processes together, and stops the whole job when one of them dies, which
//! leaves the run's last checkpoint as it was for `--resume`.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Re-run this command under `mpirun -np n`, each process with `--distributed` in place of
/// `--workers n`; wait for the job.
pub fn launch(n: usize, data: &Path, out: &Path) -> Result<()> {
    if !cfg!(feature = "mpi") {
        bail!("{}", no_mpi());
    }
    let exe = std::env::current_exe().context("finding this program to start its workers")?;
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    let mut skip = false;
    for a in std::env::args_os().skip(1) {
        if skip {
            skip = false;
            continue;
        }
        match a.to_str() {
            Some("--workers") => skip = true,
            Some(s) if s.starts_with("--workers=") => {}
            _ => args.push(a),
        }
    }
    args.push("--distributed".into());
    let status = Command::new("mpirun")
        .args(["-np", &n.to_string(), "--oversubscribe"])
        // Containers often run as root, which OpenMPI refuses without being told.
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .arg(&exe)
        .args(&args)
        .status()
        .map_err(|e| {
            anyhow::anyhow!("starting `mpirun` ({e}): data-parallel training needs OpenMPI (Debian: openmpi-bin)")
        })?;
    if !status.success() {
        bail!(
            "a worker stopped, and with it the job (mpirun: {status}); the run's last checkpoint in {} is \
             intact: continue it with `mmrf train --resume --workers {n} --data {} --out {}`",
            out.display(),
            data.display(),
            out.display()
        );
    }
    Ok(())
}

/// This process's place in the MPI job it was started in.
pub fn join() -> Result<mmrf_train::distributed::Group> {
    #[cfg(feature = "mpi")]
    {
        let group = mpi_group::MpiGroup::join()?;
        Ok(mmrf_train::distributed::Group(std::sync::Arc::new(group)))
    }
    #[cfg(not(feature = "mpi"))]
    bail!("{}", no_mpi())
}

fn no_mpi() -> &'static str {
    "this mmrf was built without MPI: data-parallel training needs `cargo build --release --features mpi` \
     (and OpenMPI: Debian's libopenmpi-dev, openmpi-bin and libclang-dev)"
}

/// The group over MPI: `mpirun -np N mmrf train --distributed ...` starts N processes (on
/// this machine, or on the hosts `--host` names), each joins the job's world. It lives here,
/// not in `mmrf-train`, so that building with MPI recompiles only this crate.
#[cfg(feature = "mpi")]
mod mpi_group {

    use std::sync::Mutex;

    use ::mpi::collective::SystemOperation;
    use ::mpi::environment::Universe;
    use ::mpi::topology::SimpleCommunicator;
    use ::mpi::traits::*;
    use ::mpi::Threading;

    use mmrf_train::distributed::Collective;

    /// This process's place in an MPI job.
    pub struct MpiGroup {
        world: Mutex<SimpleCommunicator>,
        rank: usize,
        size: usize,
        // Finalizes MPI when dropped: it lives as long as the group.
        _universe: Universe,
    }

    // SAFETY: MPI is initialised with `MPI_THREAD_SERIALIZED`: any thread may call it as
    // long as no two do at once, which the mutex around the communicator guarantees.
    unsafe impl Send for MpiGroup {}
    unsafe impl Sync for MpiGroup {}

    impl MpiGroup {
        /// Join the MPI job this process was started in (an error when MPI cannot start).
        pub fn join() -> anyhow::Result<MpiGroup> {
            let (universe, _) = ::mpi::initialize_with_threading(Threading::Serialized)
                .ok_or_else(|| anyhow::anyhow!("MPI is already initialised in this process"))?;
            let world = universe.world();
            let (rank, size) = (world.rank() as usize, world.size() as usize);
            Ok(MpiGroup {
                world: Mutex::new(world),
                rank,
                size,
                _universe: universe,
            })
        }
    }

    impl Collective for MpiGroup {
        fn rank(&self) -> usize {
            self.rank
        }

        fn size(&self) -> usize {
            self.size
        }

        fn mean(&self, data: &mut [f32]) {
            let world = self.world.lock().unwrap_or_else(|e| e.into_inner());
            let send = data.to_vec();
            world.all_reduce_into(&send[..], data, SystemOperation::sum());
            let n = self.size as f32;
            data.iter_mut().for_each(|x| *x /= n);
        }

        fn barrier(&self) {
            self.world.lock().unwrap_or_else(|e| e.into_inner()).barrier();
        }
    }
}
