//! The event writer's files read back with the record-format decoder: every scalar and
//! histogram comes back, the framing matches the format byte for byte, and damage is caught.

use metarec_report::crc32c::masked_crc32c;
use metarec_report::tfevents::{
    EventWriter, FILE_VERSION, ReadOptions, TfEventsError, ValueData, What, event_files,
    read_event_file, read_events, scalars,
};

#[test]
fn every_scalar_written_is_read_back_with_its_tag_and_step() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("runs").join("train-seed7");
    let mut expected = Vec::new();
    {
        let mut w = EventWriter::create(&run).unwrap();
        for step in 1..=50i64 {
            let reward = (step as f64).sqrt() * 1.25 - 3.0;
            let loss = 1.0 / step as f64;
            w.scalars(step, &[("train/reward", reward), ("train/loss", loss)])
                .unwrap();
            expected.push(("train/reward".to_string(), step, reward as f32));
            expected.push(("train/loss".to_string(), step, loss as f32));
        }
        // Steps 0, negative and beyond 32 bits, and values outside f32's comfortable range.
        for (step, v) in [
            (0i64, 0.0),
            (-3, -1e-30),
            (5_000_000_000, 1e30),
            (7, f64::MAX),
        ] {
            w.scalar("edge/value", step, v).unwrap();
            expected.push(("edge/value".to_string(), step, v as f32));
        }
        w.histogram("hist/rewards", 3, &[0.0, 1.0, 1.0, 2.0, 10.0])
            .unwrap();
        w.flush().unwrap();
    }
    let files = event_files(&run).unwrap();
    assert_eq!(files.len(), 1);
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    let parts: Vec<&str> = name.splitn(5, '.').collect();
    assert_eq!(&parts[..3], ["events", "out", "tfevents"], "{name}");
    assert!(parts[3].parse::<u64>().unwrap() > 1_600_000_000, "{name}");
    assert!(!parts[4].is_empty(), "{name}");

    let events = read_event_file(&files[0], ReadOptions::default()).unwrap();
    assert_eq!(events[0].what, What::FileVersion(FILE_VERSION.into()));
    assert!(events[0].wall_time > 1.6e9);
    let got = scalars(&events);
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g.0, e.0);
        assert_eq!(g.1, e.1);
        assert_eq!(g.2.to_bits(), e.2.to_bits(), "{} at {}", e.0, e.1);
    }
    let histogram = events
        .iter()
        .find_map(|e| match &e.what {
            What::Summary(v) => v.iter().find_map(|v| match &v.data {
                ValueData::Histogram(h) if v.tag == "hist/rewards" => Some((e.step, h.clone())),
                _ => None,
            }),
            _ => None,
        })
        .expect("the histogram is there");
    assert_eq!(histogram.0, 3);
    let h = histogram.1;
    assert_eq!(
        (h.min, h.max, h.num, h.sum, h.sum_squares),
        (0.0, 10.0, 5.0, 14.0, 106.0)
    );
    assert_eq!(h.bucket.iter().sum::<f64>(), 5.0);
    assert_eq!(h.bucket.len(), h.bucket_limit.len());
}

#[test]
fn the_first_record_is_framed_as_tensorflow_expects() {
    let dir = tempfile::tempdir().unwrap();
    let w = EventWriter::create(dir.path()).unwrap();
    let bytes = std::fs::read(w.path()).unwrap();
    // Event { wall_time (key + 8 bytes), file_version (key, length, 13 bytes) } = 24 bytes.
    let len = 9 + 2 + FILE_VERSION.len();
    assert_eq!(bytes.len(), 8 + 4 + len + 4);
    assert_eq!(
        u64::from_le_bytes(bytes[..8].try_into().unwrap()),
        len as u64
    );
    assert_eq!(
        u32::from_le_bytes(bytes[8..12].try_into().unwrap()),
        masked_crc32c(&(len as u64).to_le_bytes())
    );
    let data = &bytes[12..12 + len];
    assert_eq!(data[0], 0x09, "field 1, wire type fixed64");
    assert_eq!(
        &data[9..11],
        &[0x1A, 13],
        "field 3, length-delimited, 13 bytes"
    );
    assert_eq!(&data[11..], FILE_VERSION.as_bytes());
    assert_eq!(
        u32::from_le_bytes(bytes[12 + len..].try_into().unwrap()),
        masked_crc32c(data)
    );
}

#[test]
fn damaged_and_truncated_files_are_errors_naming_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = {
        let mut w = EventWriter::create(dir.path()).unwrap();
        for step in 0..5 {
            w.scalar("x", step, step as f64).unwrap();
        }
        w.path().to_owned()
    };
    let bytes = std::fs::read(&path).unwrap();
    let first = 16 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;

    // A flipped bit in the second record's data.
    let mut damaged = bytes.clone();
    damaged[first + 14] ^= 0x40;
    match read_events(&damaged, ReadOptions::default()) {
        Err(TfEventsError::Corrupt {
            record,
            offset,
            message,
        }) => {
            assert_eq!((record, offset), (1, first));
            assert!(message.contains("data checksum"), "{message}");
        }
        other => panic!("expected a checksum error, got {other:?}"),
    }
    // A damaged length.
    let mut damaged = bytes.clone();
    damaged[first] ^= 1;
    assert!(matches!(
        read_events(&damaged, ReadOptions::default()),
        Err(TfEventsError::Corrupt { record: 1, .. })
    ));
    // A file cut in the middle of its last record: an error, or the end when allowed.
    let cut = &bytes[..bytes.len() - 3];
    assert!(matches!(
        read_events(cut, ReadOptions::default()),
        Err(TfEventsError::Corrupt { record: 5, .. })
    ));
    let events = read_events(
        cut,
        ReadOptions {
            allow_truncated_tail: true,
        },
    )
    .unwrap();
    assert_eq!(scalars(&events).len(), 4);
}

#[test]
fn two_writers_in_one_run_directory_never_share_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = EventWriter::create(dir.path()).unwrap();
    let mut b = EventWriter::create(dir.path()).unwrap();
    assert_ne!(a.path(), b.path());
    a.scalar("a", 1, 1.0).unwrap();
    b.scalar("b", 1, 2.0).unwrap();
    drop((a, b));
    let mut tags: Vec<String> = event_files(dir.path())
        .unwrap()
        .iter()
        .flat_map(|f| scalars(&read_event_file(f, ReadOptions::default()).unwrap()))
        .map(|s| s.0)
        .collect();
    tags.sort();
    assert_eq!(tags, ["a", "b"]);
}
