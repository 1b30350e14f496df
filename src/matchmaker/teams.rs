//! Team balancing: split the parties of a match into equal-sized teams with close team-mean skill.
//!
//! Parties stay whole. The objective is the team-mean gap: the highest team's mean skill minus
//! the lowest's (teams are equal in size, so this is the sum gap divided by the team size).
//!
//! - At most [`EXACT_SPLIT_PLAYERS`] players: exact. A depth-first search over every assignment
//!   of parties to teams (largest parties first, empty teams interchangeable, capacity pruned)
//!   returns the minimum gap.
//! - Above: a greedy largest-first assignment (each party to the team with the lowest skill sum
//!   that has room), then local search: swap equal-sized parties between the strongest and the
//!   weakest team while that narrows the gap.

/// Largest match split exactly (enumerated); larger matches use the heuristic.
pub const EXACT_SPLIT_PLAYERS: u32 = 12;

/// A party as the splitter sees it: its size and the sum of its players' skills.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PartyStats {
    /// Players in the party.
    pub size: u16,
    /// Sum of the players' skills.
    pub sum: f64,
}

/// The teams of a match.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// Team of each party, in the order the parties were given.
    pub team_of: Vec<u16>,
    /// Mean skill of each team.
    pub team_means: Vec<f64>,
    /// Highest team mean minus lowest.
    pub gap: f64,
}

/// Splits `parties` into `teams` teams of `team_size` players each, or `None` when the parties
/// cannot be packed into equal teams (for example parties of 4, 4 and 2 into two teams of 5).
#[must_use]
pub fn split(parties: &[PartyStats], teams: u16, team_size: u16) -> Option<Split> {
    let total: u32 = parties.iter().map(|p| u32::from(p.size)).sum();
    if teams == 0 || total != u32::from(teams) * u32::from(team_size) {
        return None;
    }
    if parties.iter().any(|p| p.size == 0 || p.size > team_size) {
        return None;
    }
    let team_of = if teams == 1 {
        vec![0; parties.len()]
    } else if team_size == 1 {
        (0..parties.len()).map(|i| i as u16).collect()
    } else if teams == 2 && total <= EXACT_SPLIT_PLAYERS {
        two_teams(parties, team_size)?
    } else if total <= EXACT_SPLIT_PLAYERS {
        exact(parties, teams, team_size)?
    } else {
        heuristic(parties, teams, team_size)?
    };
    Some(finish(parties, team_of, teams, team_size))
}

fn finish(parties: &[PartyStats], team_of: Vec<u16>, teams: u16, team_size: u16) -> Split {
    let mut sums = vec![0.0; usize::from(teams)];
    for (p, &t) in parties.iter().zip(&team_of) {
        sums[usize::from(t)] += p.sum;
    }
    let team_means: Vec<f64> = sums.iter().map(|s| s / f64::from(team_size)).collect();
    let gap = spread_of(&team_means);
    Split {
        team_of,
        team_means,
        gap,
    }
}

fn spread_of(values: &[f64]) -> f64 {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for &v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if values.is_empty() { 0.0 } else { hi - lo }
}

struct Search<'a> {
    parties: &'a [PartyStats],
    order: Vec<usize>,
    /// Sum of the skill sums of the parties from each depth on.
    rest: Vec<f64>,
    team_size: u16,
    load: Vec<u16>,
    sums: Vec<f64>,
    assign: Vec<u16>,
    best: Option<(f64, Vec<u16>)>,
}

impl Search<'_> {
    fn run(&mut self, depth: usize) {
        if let Some((best, _)) = &self.best
            && *best <= 1e-9
        {
            return;
        }
        if depth == self.order.len() {
            let gap = spread_of(&self.sums);
            if self.best.as_ref().is_none_or(|(b, _)| gap < *b) {
                self.best = Some((gap, self.assign.clone()));
            }
            return;
        }
        // Bound: the players still to place can close a team's gap by at most their skill.
        if let Some((best, _)) = &self.best {
            let (lo, hi) = (
                self.sums.iter().copied().fold(f64::INFINITY, f64::min),
                self.sums.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            );
            if self.load.iter().all(|&l| l > 0) && hi - lo - self.rest[depth] >= *best {
                return;
            }
        }
        let party = self.parties[self.order[depth]];
        let mut tried_empty = false;
        for t in 0..self.load.len() {
            if self.load[t] + party.size > self.team_size {
                continue;
            }
            if self.load[t] == 0 {
                // Empty teams are interchangeable: try only the first one.
                if tried_empty {
                    continue;
                }
                tried_empty = true;
            }
            self.load[t] += party.size;
            self.sums[t] += party.sum;
            self.assign[self.order[depth]] = t as u16;
            self.run(depth + 1);
            self.load[t] -= party.size;
            self.sums[t] -= party.sum;
        }
    }
}

/// Two teams, exactly: every set of parties for team 0 that holds the first party (the other
/// team is the rest). Solo-only matches enumerate only the sets of the right size.
fn two_teams(parties: &[PartyStats], team_size: u16) -> Option<Vec<u16>> {
    let n = parties.len();
    let total: f64 = parties.iter().map(|p| p.sum).sum();
    let mut best: Option<(f64, u32)> = None;
    let mut consider = |mask: u32| {
        // Bit i set: party i + 1 is in team 0 (party 0 always is).
        let mut size = parties[0].size;
        let mut sum = parties[0].sum;
        let mut m = mask;
        while m != 0 {
            let i = m.trailing_zeros() as usize + 1;
            size += parties[i].size;
            sum += parties[i].sum;
            m &= m - 1;
        }
        if size == team_size {
            let gap = (2.0 * sum - total).abs();
            if best.is_none_or(|(b, _)| gap < b) {
                best = Some((gap, mask));
            }
        }
    };
    let rest = (n - 1) as u32;
    if parties.iter().all(|p| p.size == 1) {
        // Gosper's hack: the masks of rest bits with exactly team_size - 1 set.
        let k = u32::from(team_size) - 1;
        if k == 0 {
            consider(0);
        } else if k <= rest {
            let mut mask: u32 = (1 << k) - 1;
            let limit: u32 = 1 << rest;
            while mask < limit {
                consider(mask);
                let c = mask & mask.wrapping_neg();
                let r = mask + c;
                mask = (((r ^ mask) >> 2) / c) | r;
            }
        }
    } else {
        for mask in 0..(1u32 << rest) {
            consider(mask);
        }
    }
    let (_, mask) = best?;
    Some(
        (0..n)
            .map(|i| u16::from(i != 0 && mask & (1 << (i - 1)) == 0))
            .collect(),
    )
}

fn exact(parties: &[PartyStats], teams: u16, team_size: u16) -> Option<Vec<u16>> {
    let mut order: Vec<usize> = (0..parties.len()).collect();
    order.sort_by(|&a, &b| {
        parties[b]
            .size
            .cmp(&parties[a].size)
            .then(parties[b].sum.total_cmp(&parties[a].sum))
    });
    let mut rest = vec![0.0; order.len() + 1];
    for d in (0..order.len()).rev() {
        rest[d] = rest[d + 1] + parties[order[d]].sum.abs();
    }
    let mut search = Search {
        parties,
        order,
        rest,
        team_size,
        load: vec![0; usize::from(teams)],
        sums: vec![0.0; usize::from(teams)],
        assign: vec![0; parties.len()],
        best: None,
    };
    search.run(0);
    search.best.map(|(_, assign)| assign)
}

fn heuristic(parties: &[PartyStats], teams: u16, team_size: u16) -> Option<Vec<u16>> {
    let n_teams = usize::from(teams);
    let mut order: Vec<usize> = (0..parties.len()).collect();
    order.sort_by(|&a, &b| {
        parties[b]
            .size
            .cmp(&parties[a].size)
            .then(parties[b].sum.total_cmp(&parties[a].sum))
    });
    let mut load = vec![0u16; n_teams];
    let mut sums = vec![0.0f64; n_teams];
    let mut team_of = vec![0u16; parties.len()];
    for &i in &order {
        let p = parties[i];
        // Lowest skill sum among teams with room; when several have room for a large party,
        // prefer the one with the least room left so big parties do not strand space.
        let mut best: Option<usize> = None;
        for t in 0..n_teams {
            if load[t] + p.size > team_size {
                continue;
            }
            best = match best {
                None => Some(t),
                Some(b) => {
                    let better = if p.size > 1 && load[t] != load[b] {
                        load[t] > load[b]
                    } else {
                        sums[t] < sums[b]
                    };
                    Some(if better { t } else { b })
                }
            };
        }
        let t = best?;
        load[t] += p.size;
        sums[t] += p.sum;
        team_of[i] = t as u16;
    }
    // Local search: move skill from the strongest to the weakest team by swapping parties of
    // equal size, taking the swap that brings the two closest to their midpoint.
    for _ in 0..(4 * parties.len()).max(16) {
        let (mut hi, mut lo) = (0, 0);
        for t in 0..n_teams {
            if sums[t] > sums[hi] {
                hi = t;
            }
            if sums[t] < sums[lo] {
                lo = t;
            }
        }
        let diff = sums[hi] - sums[lo];
        if diff <= 1e-9 {
            break;
        }
        let mut best: Option<(f64, usize, usize)> = None;
        for (i, pi) in parties.iter().enumerate() {
            if usize::from(team_of[i]) != hi {
                continue;
            }
            for (j, pj) in parties.iter().enumerate() {
                if usize::from(team_of[j]) != lo || pj.size != pi.size {
                    continue;
                }
                let d = pi.sum - pj.sum;
                if d <= 0.0 || d >= diff {
                    continue;
                }
                let after = (diff - 2.0 * d).abs();
                if best.is_none_or(|(b, _, _)| after < b) {
                    best = Some((after, i, j));
                }
            }
        }
        match best {
            Some((after, i, j)) if after < diff - 1e-9 => {
                let d = parties[i].sum - parties[j].sum;
                sums[hi] -= d;
                sums[lo] += d;
                team_of[i] = lo as u16;
                team_of[j] = hi as u16;
            }
            _ => break,
        }
    }
    Some(team_of)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solos(skills: &[f64]) -> Vec<PartyStats> {
        skills
            .iter()
            .map(|&s| PartyStats { size: 1, sum: s })
            .collect()
    }

    #[test]
    fn exact_split_finds_the_perfect_balance() {
        let parties = solos(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map(f64::from));
        let s = split(&parties, 2, 5).expect("split");
        // The sums are 55 in all, so the best split is 27 against 28: a mean gap of 0.2.
        assert!((s.gap - 0.2).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn parties_stay_whole_and_impossible_packings_are_refused() {
        let p = |size, sum| PartyStats { size, sum };
        assert!(split(&[p(4, 400.0), p(4, 400.0), p(2, 200.0)], 2, 5).is_none());
        let s = split(&[p(3, 300.0), p(2, 250.0), p(3, 330.0), p(2, 190.0)], 2, 5).expect("ok");
        let mut load = [0u16; 2];
        for (party, team) in [3u16, 2, 3, 2].iter().zip(&s.team_of) {
            load[usize::from(*team)] += party;
        }
        assert_eq!(load, [5, 5]);
    }

    #[test]
    fn heuristic_balances_large_matches() {
        let skills: Vec<f64> = (0..32).map(|i| 1000.0 + f64::from(i * 37 % 101)).collect();
        let s = split(&solos(&skills), 2, 16).expect("split");
        assert!(s.gap < 1.0, "{s:?}");
        let s = split(&solos(&skills), 4, 8).expect("split");
        assert!(s.gap < 2.0, "{s:?}");
    }

    #[test]
    fn one_team_and_one_player_teams_are_trivial() {
        let s = split(&solos(&[1.0, 5.0]), 1, 2).expect("split");
        assert_eq!(s.team_of, vec![0, 0]);
        assert_eq!(s.gap, 0.0);
        let s = split(&solos(&[1.0, 5.0, 3.0]), 3, 1).expect("split");
        assert_eq!(s.team_of, vec![0, 1, 2]);
        assert_eq!(s.gap, 4.0);
    }
}
