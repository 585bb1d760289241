//! The SQLite baseline the benches compare against: rusqlite (bundled),
//! WAL, synchronous=NORMAL, an events table and index tables by country +
//! day and actor + day.

use std::path::Path;

use annals::Event;

/// Days since 1970 of an event's occurrence start.
pub fn day(e: &Event) -> i64 {
    e.occurred.start().div_euclid(86_400_000_000)
}

/// A month's bounds in days, for the SQL queries.
pub fn month_days(month: &str) -> (i64, i64) {
    let p = annals::TimePoint::parse(month).unwrap();
    (
        p.start.div_euclid(86_400_000_000),
        (p.end() - 1).div_euclid(86_400_000_000),
    )
}

pub struct Sqlite {
    pub conn: rusqlite::Connection,
    seq: i64,
}

impl Sqlite {
    pub fn open(dir: &Path) -> Sqlite {
        let conn = rusqlite::Connection::open(dir.join("sqlite.db")).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS events(seq INTEGER PRIMARY KEY, id TEXT UNIQUE, day INTEGER, kind TEXT, body TEXT);
             CREATE TABLE IF NOT EXISTS by_country(country TEXT, day INTEGER, seq INTEGER);
             CREATE TABLE IF NOT EXISTS by_actor(actor TEXT, day INTEGER, seq INTEGER);
             CREATE INDEX IF NOT EXISTS country_day ON by_country(country, day);
             CREATE INDEX IF NOT EXISTS actor_day ON by_actor(actor, day);
             CREATE INDEX IF NOT EXISTS event_day ON events(day);",
        )
        .unwrap();
        let seq = conn
            .query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))
            .unwrap();
        Sqlite { conn, seq }
    }

    /// Runs a query returning event bodies; counts those that parse.
    pub fn events(&self, sql: &str, params: impl rusqlite::Params) -> usize {
        let mut st = self.conn.prepare_cached(sql).unwrap();
        let rows = st.query_map(params, |r| r.get::<_, String>(0)).unwrap();
        rows.filter(|b| annals::parse_event(b.as_ref().unwrap()).is_ok())
            .count()
    }
}

impl Sqlite {
    /// Appends a batch in one transaction, with its index rows.
    pub fn append(&mut self, batch: &[Event]) {
        let tx = self.conn.transaction().unwrap();
        {
            let mut ev = tx
                .prepare_cached("INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5)")
                .unwrap();
            let mut c = tx
                .prepare_cached("INSERT INTO by_country VALUES (?1, ?2, ?3)")
                .unwrap();
            let mut a = tx
                .prepare_cached("INSERT INTO by_actor VALUES (?1, ?2, ?3)")
                .unwrap();
            for e in batch {
                self.seq += 1;
                let d = day(e);
                ev.execute(rusqlite::params![
                    self.seq,
                    e.id.to_string(),
                    d,
                    e.kind,
                    annals::event_to_line(e, None)
                ])
                .unwrap();
                for cc in &e.countries {
                    c.execute(rusqlite::params![cc, d, self.seq]).unwrap();
                }
                for act in &e.actors {
                    a.execute(rusqlite::params![act.key(), d, self.seq])
                        .unwrap();
                }
            }
        }
        tx.commit().unwrap();
    }
}
