//! The certificate and CRL gauges of `/metrics`, set from the certificates in force on every
//! scrape: Unix timestamps (`…_timestamp_seconds`), the one shape of every time rocgw exports.

use super::Certificates;

impl Certificates {
    pub fn set_gauges(&self) {
        let m = crate::metrics::get();
        let cn = |dn: &str| dn.rsplit("CN=").next().unwrap_or(dn).to_string();
        m.cert_not_after.reset();
        for i in &self.identities {
            let structure = i.structure_id.as_deref().unwrap_or("-");
            m.cert_not_after
                .with_label_values(&["identity", i.role.as_str(), structure])
                .set(i.not_after_unix);
        }
        for a in &self.anchors {
            m.cert_not_after
                .with_label_values(&[&format!("anchor-{}", a.sphere), &cn(&a.subject), "-"])
                .set(a.not_after_unix);
        }
        m.crl_this_update.reset();
        m.crl_next_update.reset();
        // An authority may have several CRLs in force (one per scope: its CRL and its ARL):
        // its gauges show the oldest thisUpdate and the nearest nextUpdate.
        let mut by_issuer = std::collections::BTreeMap::new();
        for c in &self.crls {
            let (this, next) = by_issuer
                .entry((c.sphere.as_str(), cn(&c.issuer)))
                .or_insert((c.this_update_unix, c.next_update_unix));
            *this = (*this).min(c.this_update_unix);
            *next = match (*next, c.next_update_unix) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        for ((sphere, issuer), (this, next)) in by_issuer {
            let labels = [sphere, issuer.as_str()];
            m.crl_this_update.with_label_values(&labels).set(this);
            if let Some(n) = next {
                m.crl_next_update.with_label_values(&labels).set(n);
            }
        }
    }
}
