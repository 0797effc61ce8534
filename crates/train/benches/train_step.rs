//! Criterion bench of MMRF's full update (and of MMRF-DA's, without the simulator) at the
//! default network sizes, on a small generated world. `cargo bench -p mmrf-train`.

use criterion::{criterion_group, criterion_main, Criterion};
use mmrf_data::Dataset;
use mmrf_model::FeatureSpace;
use mmrf_train::actor_critic::Trainer;
use mmrf_world::{generate, Scale, WorldConfig, WorldModel};

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("world");
    generate(&WorldModel::new(WorldConfig::new(Scale::Small, 7)), &dir, &|_| {}).expect("world");
    let (data, _) = Dataset::open(&dir).expect("dataset");
    let fs = FeatureSpace::from_dataset(&data);
    for method in ["mmrf", "mmrf-da"] {
        let mut cfg = mmrf_train::actor_critic_config(method);
        cfg.sim_pretrain_steps = 5;
        let run = tmp.path().join(method);
        std::fs::create_dir_all(&run).expect("run dir");
        let _seeded = mmrf_model::device::seeded(7);
        let mut t = Trainer::new(&data, &fs, method, &cfg, mmrf_train::objective, 7, &run).expect("trainer");
        t.pretrain_simulator(&mmrf_train::Progress::hidden())
            .expect("simulator");
        c.bench_function(&format!("{method} update (batch {})", cfg.batch), |b| {
            b.iter(|| t.step().expect("update"))
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
