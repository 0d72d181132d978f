//! Span and error counters per service and operation.
//!
//! Kept per memtable, per segment (persisted in the catalog) and as a running
//! total of all segments, so the services and operations endpoints are served
//! from memory. Nested maps let the hot path look a span's counters up by
//! borrowed strings, without allocating for every span.

use std::collections::BTreeMap;

use ashiato_model::Span;

/// Counters of one operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub spans: u64,
    pub errors: u64,
}

/// service → operation → counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpStats {
    services: BTreeMap<String, BTreeMap<String, Counts>>,
}

impl OpStats {
    pub fn new() -> OpStats {
        OpStats::default()
    }

    pub fn add(&mut self, service: &str, name: &str, counts: Counts) {
        if let Some(operations) = self.services.get_mut(service) {
            if let Some(entry) = operations.get_mut(name) {
                entry.spans += counts.spans;
                entry.errors += counts.errors;
            } else {
                operations.insert(name.to_owned(), counts);
            }
            return;
        }
        self.services.insert(
            service.to_owned(),
            BTreeMap::from([(name.to_owned(), counts)]),
        );
    }

    pub fn add_span(&mut self, span: &Span) {
        let counts = Counts {
            spans: 1,
            errors: u64::from(span.is_error()),
        };
        self.add(span.service_name(), &span.name, counts);
    }

    pub fn merge(&mut self, other: &OpStats) {
        for (service, name, counts) in other.iter() {
            self.add(service, name, counts);
        }
    }

    /// Removes another set of counters (a dropped segment's); operations and
    /// services that reach zero spans disappear.
    pub fn subtract(&mut self, other: &OpStats) {
        for (service, name, counts) in other.iter() {
            let Some(operations) = self.services.get_mut(service) else {
                continue;
            };
            if let Some(entry) = operations.get_mut(name) {
                entry.spans = entry.spans.saturating_sub(counts.spans);
                entry.errors = entry.errors.saturating_sub(counts.errors);
                if entry.spans == 0 {
                    operations.remove(name);
                }
            }
            if operations.is_empty() {
                self.services.remove(service);
            }
        }
    }

    /// (service, operation, counts), sorted by service then operation.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, Counts)> {
        self.services.iter().flat_map(|(service, operations)| {
            operations
                .iter()
                .map(move |(name, counts)| (service.as_str(), name.as_str(), *counts))
        })
    }

    /// Counts of each operation of one service.
    pub fn operations_of<'a>(&'a self, service: &str) -> impl Iterator<Item = (&'a str, Counts)> {
        self.services
            .get(service)
            .into_iter()
            .flat_map(|operations| {
                operations
                    .iter()
                    .map(|(name, counts)| (name.as_str(), *counts))
            })
    }
}
