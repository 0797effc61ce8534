//! Data-parallel training: one replica of the networks per process, each process sampling
//! its batches from its own shard of users, the gradients averaged over the processes
//! before every optimizer step, so the replicas stay identical.
//!
//! The processes form a [`Collective`]: `mmrf train --workers N` makes one over MPI
//! (launched by `mpirun`, on one machine or several; the CLI's `mpi` feature); the trainer
//! needs nothing else of it. [`average`] is the one operation an update adds: all of a module's gradients
//! in one all-reduce.

use std::fmt;
use std::sync::Arc;

use burn::module::{ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;

/// A group of processes training one model together.
pub trait Collective: Send + Sync {
    /// This process's index, `0..size`; process 0 writes the run directory.
    fn rank(&self) -> usize;
    /// How many processes train.
    fn size(&self) -> usize;
    /// Replace `data` by its element-wise mean over the group (every process calls it with
    /// the same length, in the same order).
    fn mean(&self, data: &mut [f32]);
    /// Wait until every process of the group arrives.
    fn barrier(&self);
}

/// A shared handle on the group a run trains in.
#[derive(Clone)]
pub struct Group(pub Arc<dyn Collective>);

impl Group {
    pub fn rank(&self) -> usize {
        self.0.rank()
    }

    pub fn size(&self) -> usize {
        self.0.size()
    }

    /// Whether this process writes the run's files.
    pub fn leads(&self) -> bool {
        self.rank() == 0
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Group(rank {} of {})", self.rank(), self.size())
    }
}

/// Every float parameter's gradient (or zeros where this process has none), flattened in
/// the module's order, and whether it had one.
struct Gather {
    grads: GradientsParams,
    flat: Vec<f32>,
    present: Vec<f32>,
}

impl ModuleVisitor for Gather {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let n = param.val().shape().num_elements();
        match self.grads.remove::<D>(param.id) {
            Some(g) => {
                self.flat
                    .extend(g.into_data().try_to_vec::<f32>().unwrap_or_else(|_| vec![0.0; n]));
                self.present.push(1.0);
            }
            None => {
                self.flat.extend(std::iter::repeat_n(0.0, n));
                self.present.push(0.0);
            }
        }
    }
}

/// Puts the averaged gradients back, for every parameter some process had one for.
struct Scatter<'a> {
    grads: GradientsParams,
    flat: &'a [f32],
    present: &'a [f32],
    at: usize,
    index: usize,
}

impl ModuleVisitor for Scatter<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        let shape = value.shape();
        let n = shape.num_elements();
        if self.present[self.index] > 0.0 {
            let data = TensorData::new(self.flat[self.at..self.at + n].to_vec(), shape);
            self.grads
                .register::<D>(param.id, Tensor::from_data(data, &value.device()));
        }
        self.at += n;
        self.index += 1;
    }
}

/// `grads` of `module` averaged over the group: one all-reduce of every gradient (and of
/// which parameters had one), so each process's optimizer takes the same step.
pub fn average<M: Module>(grads: GradientsParams, module: &M, group: &dyn Collective) -> GradientsParams {
    if group.size() <= 1 {
        return grads;
    }
    let mut gather = Gather {
        grads,
        flat: Vec::new(),
        present: Vec::new(),
    };
    module.visit(&mut gather);
    let Gather { flat, mut present, .. } = gather;
    let params = present.len();
    let mut all = flat;
    all.append(&mut present);
    group.mean(&mut all);
    let (flat, present) = all.split_at(all.len() - params);
    let mut scatter = Scatter {
        grads: GradientsParams::new(),
        flat,
        present,
        at: 0,
        index: 0,
    };
    module.visit(&mut scatter);
    scatter.grads
}

/// Flattens every float parameter (to compare replicas).
struct Flatten(Vec<f32>);

impl ModuleVisitor for Flatten {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0
            .extend(param.val().into_data().try_to_vec::<f32>().unwrap_or_default());
    }
}

/// Every float parameter of `module`, in order.
pub fn flat_params<M: Module>(module: &M) -> Vec<f32> {
    let mut f = Flatten(Vec::new());
    module.visit(&mut f);
    f.0
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::{Barrier, Mutex};

    /// A group of threads in one process: each `mean` waits for every member's data.
    pub struct Threads {
        size: usize,
        barrier: Barrier,
        sums: Mutex<Vec<f32>>,
    }

    pub struct Member(pub Arc<Threads>, pub usize);

    impl Threads {
        pub fn new(size: usize) -> Arc<Threads> {
            Arc::new(Threads {
                size,
                barrier: Barrier::new(size),
                sums: Mutex::new(Vec::new()),
            })
        }
    }

    impl Collective for Member {
        fn rank(&self) -> usize {
            self.1
        }

        fn size(&self) -> usize {
            self.0.size
        }

        fn mean(&self, data: &mut [f32]) {
            let t = &self.0;
            if t.barrier.wait().is_leader() {
                *t.sums.lock().unwrap() = vec![0.0; data.len()];
            }
            t.barrier.wait();
            {
                let mut s = t.sums.lock().unwrap();
                s.iter_mut().zip(data.iter()).for_each(|(a, b)| *a += b);
            }
            t.barrier.wait();
            let s = t.sums.lock().unwrap();
            data.iter_mut()
                .zip(s.iter())
                .for_each(|(x, total)| *x = total / t.size as f32);
            drop(s);
            t.barrier.wait();
        }

        fn barrier(&self) {
            self.0.barrier.wait();
        }
    }

    #[test]
    fn averaged_gradients_are_the_mean_of_the_members_and_equal_on_each() {
        let device = mmrf_model::device::training();
        let _seeded = mmrf_model::device::seeded(3);
        let layer = burn::nn::LinearConfig::new(3, 2).init(&device);
        let threads = Threads::new(2);
        let results: Vec<Vec<f32>> = std::thread::scope(|s| {
            let jobs: Vec<_> = (0..2)
                .map(|rank| {
                    let layer = layer.clone();
                    let member = Member(threads.clone(), rank);
                    s.spawn(move || {
                        // Each member's loss is its own: the mean of (rank + 1) · Σ outputs.
                        let x = Tensor::<2>::ones([4, 3], &layer.weight.device());
                        let loss = layer.forward(x).sum() * (rank as f32 + 1.0);
                        let grads = GradientsParams::from_grads(loss.backward(), &layer);
                        let grads = average(grads, &layer, &member);
                        let g: Tensor<2> = grads.get(layer.weight.id).expect("a weight gradient");
                        g.into_data().try_to_vec::<f32>().unwrap()
                    })
                })
                .collect();
            jobs.into_iter().map(|j| j.join().unwrap()).collect()
        });
        assert_eq!(results[0], results[1], "every member steps alike");
        // d/dW of (r+1)·Σ_rows (xW + b) is (r+1)·4 per entry; the mean over r = 0, 1 is 6.
        assert!(results[0].iter().all(|g| (g - 6.0).abs() < 1e-5), "{:?}", results[0]);
    }
}
