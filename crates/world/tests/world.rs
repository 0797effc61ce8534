//! The generated world: format, determinism, side files, dynamics and the online interface.

use std::path::Path;
use std::sync::OnceLock;

use mmrf_data::schema::{LogSplit, Version};
use mmrf_data::session::{RequestSet, SessionConfig};
use mmrf_data::Dataset;
use mmrf_world::{
    generate, run_policy, LoggingPolicy, OnlineConfig, RandomPolicy, Scale, World, WorldConfig, WorldModel,
};

/// One small world shared by the tests of this file (generated once).
fn small() -> &'static (tempfile::TempDir, Dataset) {
    static W: OnceLock<(tempfile::TempDir, Dataset)> = OnceLock::new();
    W.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let model = WorldModel::new(WorldConfig::new(Scale::Small, 3));
        generate(&model, tmp.path(), &|_| {}).unwrap();
        let (ds, _) = Dataset::open(tmp.path()).unwrap();
        (tmp, ds)
    })
}

/// A user's request at midnight, first of its visit, with no history: what the oracles
/// rank without reading (they read the world's own state of the user).
fn bare_request(user: u32) -> mmrf_data::session::RequestState<'static> {
    mmrf_data::session::RequestState {
        user,
        time_ms: 0,
        hour: 0,
        tab: 0,
        position: 0,
        history: &[],
    }
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    for (dir, seed) in [(&a, 11), (&b, 11), (&c, 12)] {
        let mut cfg = WorldConfig::new(Scale::Small, seed);
        cfg.n_users = 40;
        generate(&WorldModel::new(cfg), dir.path(), &|_| {}).unwrap();
    }
    let (fa, fb, fc) = (files(a.path()), files(b.path()), files(c.path()));
    assert_eq!(fa.len(), 11, "6 KuaiRand files + 5 side files");
    assert!(fa == fb, "same seed, same bytes");
    let log = Version::OneK.log_files(LogSplit::Train)[0].clone();
    let find = |f: &[(String, Vec<u8>)]| f.iter().find(|(n, _)| *n == log).unwrap().1.clone();
    assert_ne!(find(&fa), find(&fc), "another seed, another log");
}

#[test]
fn writes_the_kuairand_1k_file_set_with_exact_headers() {
    let (tmp, ds) = small();
    for name in Version::OneK.all_files() {
        assert!(tmp.path().join(&name).is_file(), "{name}");
    }
    let header = std::fs::read_to_string(tmp.path().join("log_standard_4_08_to_4_21_1k.csv")).unwrap();
    assert_eq!(header.lines().next().unwrap(), mmrf_data::schema::LOG_COLUMNS.join(","));
    assert_eq!(ds.users.len(), 200);
    assert_eq!(ds.videos.len(), 1_500);
    assert_eq!(ds.video_stats.len(), 1_500);
    // Dates by KuaiRand's file names.
    assert!(ds.train.date.iter().all(|&d| (20220408..=20220421).contains(&d)));
    assert!(ds
        .test
        .date
        .iter()
        .chain(&ds.random.date)
        .all(|&d| (20220422..=20220508).contains(&d)));
    assert!(ds.random.is_rand.iter().all(|&r| r == 1) && ds.test.is_rand.iter().all(|&r| r == 0));
    // is_click and long_view follow KuaiRand's own rules.
    for log in [&ds.train, &ds.test, &ds.random] {
        for i in 0..log.len() {
            let (p, d) = (log.play_time_ms[i], log.duration_ms[i]);
            assert_eq!(log.is_click[i] == 1, mmrf_data::schema::is_valid_play(p, d));
            assert_eq!(log.long_view[i] == 1, mmrf_data::schema::is_long_view(p, d));
            let (date, hourmin) = mmrf_data::time::date_hourmin(log.time_ms[i]);
            assert_eq!((date, hourmin), (log.date[i], log.hourmin[i]));
        }
    }
    // The statistics file agrees with the logs: daily average impressions.
    let shows = ds.video_stats.numeric("show_cnt").unwrap();
    let total: f64 = shows.iter().map(|&x| x as f64).sum::<f64>() * 31.0;
    let rows = (ds.train.len() + ds.test.len()) as f64;
    assert!((total - rows).abs() / rows < 1e-3, "{total} vs {rows}");
}

#[test]
fn the_27k_layout_holds_the_same_world_in_parts() {
    let (one_k, k27) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut cfg = WorldConfig::new(Scale::Small, 5);
    // More users than generation simulates at once, so the files join several shards.
    cfg.n_users = 300;
    generate(&WorldModel::new(cfg.clone()), one_k.path(), &|_| {}).unwrap();
    cfg.scale = Scale::TwentySevenK;
    generate(&WorldModel::new(cfg), k27.path(), &|_| {}).unwrap();
    let read = |dir: &Path, name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    // The parts of a file, headers dropped after the first, are the 1K layout's file.
    let joined = |names: &[String]| {
        let parts: Vec<String> = names.iter().map(|n| read(k27.path(), n)).collect();
        for p in &parts {
            assert!(p.lines().count() > 1, "every part holds rows");
        }
        let mut all = parts[0].clone();
        for p in &parts[1..] {
            let (header, rows) = p.split_once('\n').unwrap();
            assert_eq!(header, parts[0].lines().next().unwrap());
            all.push_str(rows);
        }
        all
    };
    let (v1, v27) = (Version::OneK, Version::TwentySevenK);
    for split in LogSplit::ALL {
        let names = v27.log_files(split);
        assert_eq!(names.len(), if split == LogSplit::Random { 1 } else { 2 });
        assert_eq!(joined(&names), read(one_k.path(), &v1.log_files(split)[0]), "{split:?}");
    }
    assert_eq!(v27.video_features_statistic().len(), 3);
    assert_eq!(
        joined(&v27.video_features_statistic()),
        read(one_k.path(), &v1.video_features_statistic()[0])
    );
    for (a, b) in [
        (v1.user_features(), v27.user_features()),
        (v1.video_features_basic(), v27.video_features_basic()),
    ] {
        assert_eq!(read(one_k.path(), &a), read(k27.path(), &b));
    }
    for side in mmrf_data::side::SIDE_FILES
        .iter()
        .chain([&mmrf_world::oracle::STATES_FILE])
    {
        let bytes = |d: &Path| std::fs::read(d.join(side)).unwrap();
        assert!(bytes(one_k.path()) == bytes(k27.path()), "{side}");
    }
    let (a, _) = Dataset::open_with(one_k.path(), false).unwrap();
    let (b, _) = Dataset::open_with(k27.path(), false).unwrap();
    assert_eq!(b.version, Version::TwentySevenK);
    assert!(a.train == b.train && a.test == b.test && a.random == b.random);
    assert!(a.candidates == b.candidates && a.propensities == b.propensities);
    assert_eq!(a.video_stats, b.video_stats);
}

#[test]
fn candidate_log_and_propensities_are_consistent() {
    let (_, ds) = small();
    let cands = ds.candidates.as_ref().expect("a world writes a candidate log");
    let props = ds.propensities.as_ref().expect("a world writes true propensities");
    let mut shown = 0;
    for r in &cands.requests {
        let c = cands.candidates_of(r).unwrap();
        assert_eq!(c.len(), 100);
        let mut sorted = c.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), c.len(), "distinct candidates");
        let log = ds.log(r.split);
        for row in r.first_row..r.first_row + r.n_shown as u32 {
            assert!(c.contains(&log.video[row as usize]), "a shown video is a candidate");
            let p = props[r.split as usize][row as usize];
            if r.split == LogSplit::Random {
                assert!((p - 0.01).abs() < 1e-6, "uniform exposure: 1/|C|");
            } else {
                assert!(p > 0.0 && p <= 1.0);
            }
            shown += 1;
        }
        assert!(r.n_shown >= 1 && r.n_shown <= 6);
    }
    assert_eq!(
        shown,
        ds.train.len() + ds.test.len() + ds.random.len(),
        "every row belongs to one request"
    );
}

#[test]
fn sessions_rebuilt_from_impressions_match_the_logged_ones() {
    let (_, ds) = small();
    let cands = ds.candidates.as_ref().unwrap();
    let pool = mmrf_data::session::popularity(&ds.train, ds.videos.len());
    for split in [LogSplit::Train, LogSplit::Test] {
        let logged = RequestSet::from_candidate_log(split, cands);
        let rebuilt = RequestSet::rebuild(split, ds.log(split), &pool, &SessionConfig::default());
        assert_eq!(
            logged.n_sessions, rebuilt.n_sessions,
            "{split:?}: 30-min gap recovers the visits"
        );
        assert_eq!(logged.requests.len(), rebuilt.requests.len());
        for (a, b) in logged.requests.iter().zip(&rebuilt.requests) {
            assert_eq!((a.user, a.position, a.n_shown), (b.user, b.position, b.n_shown));
            assert_eq!(logged.shown_rows(a), rebuilt.shown_rows(b));
        }
    }
}

#[test]
fn collaborative_signals_and_session_dynamics_are_present() {
    let (_, ds) = small();
    let log = &ds.train;
    let mean_play = |pick: &dyn Fn(usize) -> bool| {
        let rows: Vec<usize> = (0..log.len()).filter(|&i| pick(i)).collect();
        rows.iter().map(|&i| log.play_time_ms[i] as f64).sum::<f64>() / rows.len().max(1) as f64
    };
    let commented = mean_play(&|i| log.is_comment[i] == 1);
    let others = mean_play(&|i| log.is_comment[i] == 0);
    assert!(
        commented > 1.5 * others,
        "commenting goes with longer watching: {commented} vs {others}"
    );
    // A hate ends the visit far more often than an ordinary impression does.
    let cands = ds.candidates.as_ref().unwrap();
    let set = RequestSet::from_candidate_log(LogSplit::Train, cands);
    let mut last_of_session = vec![false; log.len()];
    for (i, r) in set.requests.iter().enumerate() {
        let next_same = set.requests.get(i + 1).is_some_and(|n| n.session == r.session);
        if !next_same {
            last_of_session[*set.shown_rows(r).last().unwrap() as usize] = true;
        }
    }
    let rate = |pick: &dyn Fn(usize) -> bool| {
        let rows: Vec<usize> = (0..log.len()).filter(|&i| pick(i)).collect();
        rows.iter().filter(|&&i| last_of_session[i]).count() as f64 / rows.len().max(1) as f64
    };
    let after_hate = rate(&|i| log.is_hate[i] == 1);
    let base = rate(&|_| true);
    assert!(
        after_hate > 2.0 * base,
        "hate drives users away: {after_hate} vs {base}"
    );
}

#[test]
fn reload_and_online_interface() {
    let (tmp, _) = small();
    let world = World::load(tmp.path()).unwrap();
    let cfg = OnlineConfig {
        days: 2,
        users: Some((0..60).collect()),
        ..OnlineConfig::default()
    };
    let logging = LoggingPolicy { model: &world.model };
    let a = run_policy(&world.model, &logging, &cfg);
    let b = run_policy(&world.model, &logging, &cfg);
    assert_eq!(a, b, "same policy, same seed: identical arms");
    let random = run_policy(&world.model, &RandomPolicy, &cfg);
    let per_session = |o: &[mmrf_world::UserOutcome]| {
        o.iter().map(|u| u.viewed.watch_time_s).sum::<f64>() / o.iter().map(|u| u.sessions).sum::<u32>() as f64
    };
    assert_eq!(
        a.iter().map(|u| u.sessions).collect::<Vec<_>>(),
        random.iter().map(|u| u.sessions).collect::<Vec<_>>(),
        "arms are paired: the same visits"
    );
    let (wl, wr) = (per_session(&a), per_session(&random));
    assert!(
        wl > 1.3 * wr,
        "the production ranker beats random exposure: {wl} vs {wr}"
    );
    assert!(a.iter().all(|u| u.per_day.len() == 2));

    // A tampered world file is refused with a reason.
    let copy = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(tmp.path().join(mmrf_world::WORLD_FILE)).unwrap();
    let bad = text.replacen("\"checksum\": \"", "\"checksum\": \"0", 1);
    std::fs::write(copy.path().join(mmrf_world::WORLD_FILE), bad).unwrap();
    let err = World::load(copy.path()).err().expect("tampered checksum");
    assert!(err.to_string().contains("checksum"), "{err}");
}

/// The first-slot tally counts exactly the first video of every request: with one video
/// per request it is every video; with K it is one per request.
#[test]
fn first_slot_is_the_first_video_of_each_request() {
    let cfg = OnlineConfig {
        days: 2,
        users: Some((0..60).collect()),
        ..OnlineConfig::default()
    };
    let one = WorldModel::new(WorldConfig {
        k: 1,
        ..WorldConfig::new(Scale::Small, 3)
    });
    for u in run_policy(&one, &LoggingPolicy { model: &one }, &cfg) {
        assert_eq!(u.first_slot, u.viewed);
        assert_eq!(u.viewed.views, u.per_day.iter().map(|d| d.1).sum::<u32>());
    }
    let model = WorldModel::new(WorldConfig::new(Scale::Small, 3));
    let out = run_policy(&model, &LoggingPolicy { model: &model }, &cfg);
    let (views, depth) = out
        .iter()
        .fold((0, 0), |(v, d), u| (v + u.first_slot.views, d + u.viewed.views));
    assert!(out
        .iter()
        .all(|u| u.sessions <= u.first_slot.views && u.first_slot.views <= u.viewed.views));
    assert!(
        3 * views < depth,
        "K = 6 videos a request, most requests see several: {views} of {depth}"
    );
    // The logger's first draw is its most probable pick: better watched than the rest.
    let first = out.iter().map(|u| u.first_slot.watch_time_s).sum::<f64>() / views as f64;
    let all = out.iter().map(|u| u.viewed.watch_time_s).sum::<f64>() / depth as f64;
    assert!(first > all, "first draw {first} s against {all} s per shown video");
}

/// The acceptance check of the default scale: rates near KuaiRand-1K's, ≥ 1 M rows.
#[test]
fn default_world_rates_match_kuairand_1k() {
    let tmp = tempfile::tempdir().unwrap();
    let model = WorldModel::new(WorldConfig::new(Scale::Default, 7));
    generate(&model, tmp.path(), &|_| {}).unwrap();
    let report = mmrf_data::check::check_dir(tmp.path()).unwrap();
    assert!(report.complete);
    let train = &report.logs["standard_train"];
    let test = &report.logs["standard_test"];
    assert!(train.rows + test.rows >= 1_000_000, "{} rows", train.rows + test.rows);
    assert_eq!(report.users, 1_000);
    assert_eq!(report.videos, 7_388);
    for log in [train, test] {
        let r = |k: &str| log.rates[k];
        let ranges = [
            ("is_click", 0.30, 0.45),
            ("long_view", 0.20, 0.35),
            ("is_like", 0.005, 0.03),
            ("is_follow", 0.0003, 0.003),
            ("is_comment", 0.001, 0.006),
            ("is_hate", 0.0002, 0.002),
        ];
        for (k, lo, hi) in ranges {
            assert!((lo..=hi).contains(&r(k)), "{k} = {} not in [{lo}, {hi}]", r(k));
        }
    }
    // Random exposure clicks less than the production ranker's choices (KuaiRand: 0.18 vs 0.38).
    assert!(report.logs["random"].rates["is_click"] < 0.7 * test.rates["is_click"]);
    assert_eq!(report.logs["standard_train"].date_range, Some((20220408, 20220421)));
}

/// The truth the simulator report compares with: the rates of the six binary signals and
/// the play time in seconds, uncapped, of the same draws `respond` makes.
#[test]
fn expected_feedback_is_the_mean_of_responses_in_seconds() {
    use rand::SeedableRng;
    let (tmp, _) = small();
    let world = World::load(tmp.path()).unwrap();
    let m = &world.model;
    let mut state = m.initial_state(4, 1);
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    m.start_session(&mut state, &mut r);
    let (n, item) = (50, 11);
    let got = m.expected_feedback(&state, item, n, &mut r.clone());
    let mut want = [0f64; 7];
    let mut rr = r.clone();
    for _ in 0..n {
        let (f, _) = m.respond(&mut state.clone(), item, &mut rr);
        let x = [f.click, f.like, f.follow, f.comment, f.hate, f.long_view];
        for (w, b) in want.iter_mut().zip(x) {
            *w += b as u8 as f64 / n as f64;
        }
        want[6] += f.play_time_ms as f64 / 1000.0 / n as f64;
    }
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-9, "{got:?} vs {want:?}");
    }
    assert!(got[6] > 1.0, "seconds, not a fraction of a minute: {}", got[6]);
}

#[test]
fn a_world_replaces_a_world_but_never_other_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("w");
    let mut cfg = WorldConfig::new(Scale::Small, 21);
    cfg.n_users = 20;
    generate(&WorldModel::new(cfg.clone()), &dir, &|_| {}).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    // Staging that a killed generation left beside the world.
    std::fs::create_dir(tmp.path().join(".w.mmrf-staging-1-2")).unwrap();
    cfg.seed = 22;
    generate(&WorldModel::new(cfg.clone()), &dir, &|_| {}).unwrap();
    assert_eq!(World::load(&dir).unwrap().file.config.seed, 22);
    assert!(!dir.join("notes.txt").exists(), "the old world was replaced whole");
    let siblings: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(siblings, vec![std::ffi::OsString::from("w")], "no staging left behind");

    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("keep.csv"), "a,b\n").unwrap();
    let err = generate(&WorldModel::new(cfg), &other, &|_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("not empty and not an mmrf world"), "{err}");
    assert_eq!(std::fs::read_to_string(other.join("keep.csv")).unwrap(), "a,b\n");
}

/// The oracle's expectation is the mean of what `respond` draws: within 1 % of a
/// Monte-Carlo mean of 200,000 responses (whose own standard error is about 0.3 %), for
/// videos from short to long, at a fresh and at a tired state.
#[test]
fn the_oracles_expected_play_time_is_the_mean_response() {
    use rand::SeedableRng;
    let (tmp, _) = small();
    let world = World::load(tmp.path()).unwrap();
    let m = &world.model;
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(21);
    let mut fresh = m.initial_state(7, 2);
    m.start_session(&mut fresh, &mut r);
    let mut tired = fresh.clone();
    tired.fatigue = 1.5;
    let mut items: Vec<u32> = (0..m.n_videos() as u32).collect();
    items.sort_by_key(|&j| m.item_duration_ms[j as usize]);
    let picks = [
        0,
        items.len() / 4,
        items.len() / 2,
        3 * items.len() / 4,
        items.len() - 1,
    ]
    .map(|i| items[i]);
    for state in [&fresh, &tired] {
        for &item in &picks {
            let want = m.expected_play_s(state, item);
            let n = 200_000;
            let mean: f64 = (0..n)
                .map(|_| m.respond(&mut state.clone(), item, &mut r).0.play_time_ms as f64 / 1000.0)
                .sum::<f64>()
                / n as f64;
            assert!(
                (want - mean).abs() < 0.01 * mean,
                "item {item} ({} ms), fatigue {}: oracle {want:.4} s, sampled {mean:.4} s",
                m.item_duration_ms[item as usize],
                state.fatigue
            );
        }
    }
}

/// The session-aware oracle's family: its play is the myopic oracle's, its leave
/// probability is a probability near the one `respond` draws, and with no horizon it ranks
/// as the myopic oracle does.
#[test]
fn the_session_oracle_adds_the_value_of_staying_to_the_myopic_oracle() {
    use mmrf_world::{MyopicOracle, Policy, SessionOracle};
    use rand::SeedableRng;
    let (tmp, _) = small();
    let world = World::load(tmp.path()).unwrap();
    let m = &world.model;
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut state = m.initial_state(3, 1);
    m.start_session(&mut state, &mut r);
    let candidates: Vec<u32> = (0..40).collect();
    for &c in &candidates {
        let (play, leave) = m.expected_play_and_leave(&state, c);
        assert_eq!(play, m.expected_play_s(&state, c));
        assert!(leave > 0.0 && leave < 1.0);
    }
    // The leave probability is near the rate of leaving after the video (the watched
    // share's noise enters through its mean, so not exactly).
    let item = 7;
    let n = 50_000;
    let left = (0..n).filter(|_| m.respond(&mut state.clone(), item, &mut r).1).count() as f64 / n as f64;
    let (_, leave) = m.expected_play_and_leave(&state, item);
    assert!(
        (leave - left).abs() < 0.1 * left + 0.005,
        "expected {leave}, sampled {left}"
    );
    let rs = bare_request(state.user);
    let score = |p: &dyn Policy| {
        let mut s = vec![0f32; candidates.len()];
        p.score_in(&state, &rs, &candidates, &mut s);
        s
    };
    let myopic = score(&MyopicOracle { model: m });
    assert_eq!(
        score(&SessionOracle {
            model: m,
            horizon_s: 0.0,
            fatigue_s: 0.0,
            sequential: false,
        }),
        myopic
    );
    assert_ne!(score(&SessionOracle::new(m)), myopic);
}

/// The sequential oracle's roll-forward moves the state as `respond` does on average.
#[test]
fn the_expected_transition_is_the_mean_of_the_drawn_ones() {
    use rand::SeedableRng;
    let (tmp, _) = small();
    let world = World::load(tmp.path()).unwrap();
    let m = &world.model;
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut state = m.initial_state(5, 1);
    m.start_session(&mut state, &mut r);
    // A few videos in, so that the recent topics and satisfaction are not at their start.
    for item in [3, 8, 13] {
        m.respond(&mut state, item, &mut r);
    }
    for item in [21u32, 22, 40] {
        let mut expected = state.clone();
        let step = m.expected_step(&state, item);
        m.expected_transition(&mut expected, item, &step);
        let n = 20_000;
        let (mut satisfaction, mut interest) = (0.0f64, vec![0.0f64; state.interest.len()]);
        for _ in 0..n {
            let mut s = state.clone();
            m.respond(&mut s, item, &mut r);
            // Fatigue and the recent topics do not depend on the draw.
            assert_eq!(s.fatigue, expected.fatigue);
            assert_eq!(s.recent_topic, expected.recent_topic);
            satisfaction += s.satisfaction as f64 / n as f64;
            interest
                .iter_mut()
                .zip(&s.interest)
                .for_each(|(a, b)| *a += *b as f64 / n as f64);
        }
        // Satisfaction: a follow's joy is left out of the expectation (follows are rare).
        assert!(
            (expected.satisfaction as f64 - satisfaction).abs() < 0.01,
            "item {item}: expected {}, sampled {satisfaction}",
            expected.satisfaction
        );
        let gap = interest
            .iter()
            .zip(&expected.interest)
            .map(|(a, b)| (a - *b as f64).abs())
            .fold(0.0, f64::max);
        assert!(gap < 0.01, "item {item}: interest off by {gap}");
    }
}

/// Chosen slot by slot, a slate counts its own repetition: over many requests its videos
/// are further apart in topic than the same values' top-K chosen all at once.
#[test]
fn the_sequential_slate_repeats_itself_less() {
    use mmrf_world::{Policy, SessionOracle};
    use rand::SeedableRng;
    let (tmp, _) = small();
    let world = World::load(tmp.path()).unwrap();
    let m = &world.model;
    let k = m.config.k;
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let mut repetition = |p: &SessionOracle, sequential: bool| -> f64 {
        let p = SessionOracle { sequential, ..*p };
        let mut total = 0.0;
        for user in 0..20u32 {
            let mut state = m.initial_state(user, 1);
            m.start_session(&mut state, &mut rand_chacha::ChaCha8Rng::seed_from_u64(user as u64));
            let (mut candidates, mut seen) = (Vec::new(), Vec::new());
            m.candidates(&state, 100, &mut r, &mut candidates, &mut seen);
            let rs = bare_request(user);
            let mut scores = vec![0f32; candidates.len()];
            p.score_in(&state, &rs, &candidates, &mut scores);
            let mut order: Vec<usize> = (0..candidates.len()).collect();
            order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
            let slate: Vec<&[f32]> = order[..k].iter().map(|&i| m.topic(candidates[i])).collect();
            for i in 0..k {
                for j in 0..i {
                    total += slate[i].iter().zip(slate[j]).map(|(a, b)| a * b).sum::<f32>() as f64;
                }
            }
        }
        total
    };
    let oracle = SessionOracle::new(m);
    let (together, sequential) = (repetition(&oracle, false), repetition(&oracle, true));
    assert!(
        sequential < together,
        "sequential {sequential} against all at once {together}"
    );
}
