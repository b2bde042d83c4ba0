//! Conformance cases for bulk import; instantiated by
//! [`import_conformance_tests!`](crate::import_conformance_tests).

use std::sync::Arc;

use super::fixtures::{self, attrs, groups_of, hex_id, mapped, new_policy, ok, strings, thing};
use super::fresh_scope;
use crate::{
    CertificateImport, CertificateRecord, GroupSelection, ImportItem, ImportLimits, ImportOutcome,
    ImportRefusal, PolicyTarget, Scope, Store, ThingGroupRecord,
};

const LIMITS: ImportLimits = ImportLimits {
    max_group_depth: 3,
    max_groups_per_thing: 2,
    max_policies_per_target: 2,
};

fn group(
    scope: &Scope,
    name: &str,
    parent: Option<&str>,
    attributes: &[(&str, &str)],
) -> ImportItem {
    ImportItem::ThingGroup(ThingGroupRecord {
        description: Some(format!("group {name}")),
        attributes: attrs(attributes),
        ..fixtures::group(scope, name, parent)
    })
}

/// A hierarchy of groups without attributes, each the child of the one before.
fn hierarchy(scope: &Scope, names: &[&str]) -> Vec<ImportItem> {
    let parents = [None].into_iter().chain(names.iter().copied().map(Some));
    names
        .iter()
        .zip(parents)
        .map(|(name, parent)| group(scope, name, parent, &[]))
        .collect()
}

fn policy(scope: &Scope, name: &str, document: &str) -> ImportItem {
    ImportItem::Policy(new_policy(scope, name, document))
}

fn cert_record(scope: &Scope, id: &str, ca: Option<&str>) -> CertificateRecord {
    let mut record = fixtures::cert_record(scope, id, "ACTIVE", ca, 2_000);
    // Not the defaults, so that the import is seen to write them.
    record.certificate_mode = "SNI_ONLY".into();
    record.facts.crl_distribution_points = vec!["http://crl.example/a.crl".into()];
    record
}

fn cert(scope: &Scope, id: &str, things: &[&str], policies: &[&str]) -> CertificateImport {
    CertificateImport {
        record: cert_record(scope, id, None),
        things: strings(things),
        policies: strings(policies),
    }
}

fn thing_item(scope: &Scope, name: &str, groups: &[&str]) -> ImportItem {
    ImportItem::Thing {
        record: thing(scope, name, &[("k", "v")]),
        groups: strings(groups),
        certificate: None,
    }
}

const DOC: &str =
    r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*"}}"#;
const DOC2: &str =
    r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"iot:*","Resource":"*"}}"#;

async fn import(store: &dyn Store, scope: &Scope, items: Vec<ImportItem>) -> Vec<ImportOutcome> {
    let n = items.len();
    let outcomes = store
        .import_batch(scope, items, &LIMITS)
        .await
        .expect("import batch");
    assert_eq!(outcomes.len(), n, "one outcome per item");
    outcomes
}

fn created(n: usize) -> Vec<ImportOutcome> {
    vec![ImportOutcome::Created; n]
}

/// The things in `group` and the groups below it.
async fn members(store: &dyn Store, scope: &Scope, group: &str) -> Vec<String> {
    ok(store.list_things_in_thing_group(scope, group, true, None, 10)).await
}

async fn principals(store: &dyn Store, scope: &Scope, thing: &str) -> Vec<String> {
    store
        .list_thing_principals(scope, thing, None, 100)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("thing {thing} missing"))
}

async fn policies_of(store: &dyn Store, scope: &Scope, cert_arn: &str) -> Vec<String> {
    mapped(
        store.list_attached_policies(scope, &[cert_arn.to_owned()], None, 100),
        |p| p.name,
    )
    .await
}

pub async fn import_creates_resources_and_relations(store: Arc<dyn Store>) {
    let s = fresh_scope();
    let (c1, c2) = (hex_id(), hex_id());
    let items = vec![
        policy(&s, "p1", DOC),
        policy(&s, "p2", DOC2),
        group(&s, "root", None, &[("floor", "1")]),
        group(&s, "child", Some("root"), &[]),
        thing_item(&s, "t1", &["child"]),
        ImportItem::Thing {
            record: thing(&s, "t2", &[]),
            groups: Vec::new(),
            certificate: Some(cert(&s, &c1, &["t2"], &["p1"])),
        },
        ImportItem::Certificate(cert(&s, &c2, &["t1", "t2"], &["p1", "p2"])),
    ];
    let outcomes = import(&*store, &s, items).await;
    let mut expected = created(5);
    expected.push(ImportOutcome::ThingAndCertificate {
        thing_created: true,
        certificate_created: true,
    });
    expected.push(ImportOutcome::Created);
    assert_eq!(outcomes, expected);

    let (p, v) = store
        .get_policy_version(&s, "p1", None)
        .await
        .unwrap()
        .expect("policy");
    assert_eq!(p.default_version_id, 1);
    assert_eq!(v.expect("version 1").document, DOC);
    let child = ok(store.get_thing_group(&s, "child")).await;
    let child = child.expect("child group");
    assert_eq!(child.group.parent_name.as_deref(), Some("root"));
    assert_eq!(
        child
            .root_to_parent
            .iter()
            .map(|g| g.name.as_str())
            .collect::<Vec<_>>(),
        ["root"]
    );
    let root = store.get_thing_group(&s, "root").await.unwrap().unwrap();
    assert_eq!(root.group.attributes, attrs(&[("floor", "1")]));
    let descendants = store
        .list_thing_groups(
            &s,
            &GroupSelection::DescendantsOf("root".into()),
            None,
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(descendants.len(), 1);

    let t1 = store.get_thing(&s, "t1").await.unwrap().expect("t1");
    assert_eq!(t1.attributes, attrs(&[("k", "v")]));
    assert_eq!(groups_of(&*store, &s, "t1").await, ["child"]);
    assert_eq!(members(&*store, &s, "root").await, ["t1"]);
    let mut t2_certs = principals(&*store, &s, "t2").await;
    t2_certs.sort();
    let mut both = vec![c1.clone(), c2.clone()];
    both.sort();
    assert_eq!(t2_certs, both);
    assert_eq!(principals(&*store, &s, "t1").await, vec![c2.clone()]);

    let r1 = store.get_certificate(&s, &c1).await.unwrap().expect("c1");
    assert_eq!(
        r1,
        cert_record(&s, &c1, None).with_generation(&r1.generation_id)
    );
    assert_eq!(policies_of(&*store, &s, &r1.arn).await, ["p1"]);
    let r2 = store.get_certificate(&s, &c2).await.unwrap().unwrap();
    assert_eq!(policies_of(&*store, &s, &r2.arn).await, ["p1", "p2"]);
    assert_eq!(
        store
            .list_targets_for_policy(&s, "p2", None, 10)
            .await
            .unwrap(),
        Some(vec![r2.arn.clone()])
    );
}

impl CertificateRecord {
    fn with_generation(mut self, generation: &str) -> CertificateRecord {
        self.generation_id = generation.to_owned();
        self
    }
}

pub async fn import_items_see_earlier_items_of_the_batch(store: Arc<dyn Store>) {
    let s = fresh_scope();
    let c = hex_id();
    // Each item depends on the one before it, all in one batch.
    let mut items = hierarchy(&s, &["a", "b", "c"]);
    items.extend([
        thing_item(&s, "t", &["c"]),
        policy(&s, "p", DOC),
        ImportItem::Certificate(cert(&s, &c, &["t"], &["p"])),
        // The same certificate again in the batch: already there now.
        ImportItem::Certificate(cert(&s, &c, &["t"], &["p"])),
    ]);
    let outcomes = import(&*store, &s, items).await;
    let mut expected = created(6);
    expected.push(ImportOutcome::Unchanged);
    assert_eq!(outcomes, expected);
    assert_eq!(principals(&*store, &s, "t").await, [c]);
    assert_eq!(members(&*store, &s, "a").await, ["t"]);
}

pub async fn import_refusals_write_nothing_of_their_item(store: Arc<dyn Store>) {
    let s = fresh_scope();
    let (ok_cert, missing_thing, missing_policy, missing_ca, too_many) =
        (hex_id(), hex_id(), hex_id(), hex_id(), hex_id());
    let exclusive = hex_id();
    // Setup: a hierarchy at the depth limit, two roots, a thing exclusively holding a
    // certificate, three policies.
    let mut items = hierarchy(&s, &["l1", "l2", "l3"]);
    items.extend([
        group(&s, "other", None, &[]),
        group(&s, "third", None, &[]),
        thing_item(&s, "holder", &[]),
        policy(&s, "p1", DOC),
        policy(&s, "p2", DOC),
        policy(&s, "p3", DOC),
        ImportItem::Certificate(cert(&s, &exclusive, &[], &[])),
    ]);
    import(&*store, &s, items).await;
    store
        .attach_thing_principal(&s, "holder", &exclusive, true, 5)
        .await
        .unwrap()
        .unwrap();

    let items = vec![
        group(&s, "l4", Some("l3"), &[]),
        group(&s, "orphan", Some("nowhere"), &[]),
        thing_item(&s, "t-bad-group", &["nowhere"]),
        thing_item(&s, "t-same-hierarchy", &["l1", "l2"]),
        thing_item(&s, "t-too-many", &["l1", "other", "third"]),
        ImportItem::Certificate(cert(&s, &missing_thing, &["holder", "ghost"], &[])),
        ImportItem::Certificate(cert(&s, &missing_policy, &["holder"], &["ghost"])),
        ImportItem::Certificate(CertificateImport {
            record: cert_record(&s, &missing_ca, Some(&hex_id())),
            things: Vec::new(),
            policies: Vec::new(),
        }),
        ImportItem::Certificate(cert(&s, &too_many, &[], &["p1", "p2", "p3"])),
        ImportItem::Certificate(cert(&s, &exclusive, &["t-ok"], &[])),
        // A thing whose certificate is refused is not created either.
        ImportItem::Thing {
            record: thing(&s, "t-cert-refused", &[]),
            groups: Vec::new(),
            certificate: Some(cert(&s, &hex_id(), &["t-cert-refused"], &["ghost"])),
        },
        // And what is fine still goes in.
        thing_item(&s, "t-ok", &["l3"]),
        ImportItem::Certificate(cert(&s, &ok_cert, &["t-ok"], &["p1"])),
    ];
    let outcomes = import(&*store, &s, items).await;
    assert_eq!(
        outcomes,
        vec![
            ImportOutcome::Refused(ImportRefusal::TooDeep { limit: 3 }),
            ImportOutcome::Refused(ImportRefusal::GroupNotFound("nowhere".into())),
            ImportOutcome::Refused(ImportRefusal::GroupNotFound("nowhere".into())),
            ImportOutcome::Refused(ImportRefusal::SameHierarchy {
                member_of: "l1".into(),
                requested: "l2".into()
            }),
            ImportOutcome::Refused(ImportRefusal::TooManyGroups { limit: 2 }),
            ImportOutcome::Refused(ImportRefusal::ThingNotFound("ghost".into())),
            ImportOutcome::Refused(ImportRefusal::PolicyNotFound("ghost".into())),
            ImportOutcome::Refused(ImportRefusal::CaNotFound),
            ImportOutcome::Refused(ImportRefusal::TooManyPolicies { limit: 2 }),
            // t-ok does not exist yet at this point of the batch.
            ImportOutcome::Refused(ImportRefusal::ThingNotFound("t-ok".into())),
            ImportOutcome::Refused(ImportRefusal::PolicyNotFound("ghost".into())),
            ImportOutcome::Created,
            ImportOutcome::Created,
        ]
    );
    for group in ["l4", "orphan"] {
        assert!(store.get_thing_group(&s, group).await.unwrap().is_none());
    }
    for thing in [
        "t-bad-group",
        "t-same-hierarchy",
        "t-too-many",
        "t-cert-refused",
    ] {
        assert!(
            store.get_thing(&s, thing).await.unwrap().is_none(),
            "{thing}"
        );
    }
    for id in [&missing_thing, &missing_policy, &missing_ca, &too_many] {
        assert!(store.get_certificate(&s, id).await.unwrap().is_none());
    }
    assert_eq!(
        principals(&*store, &s, "holder").await,
        vec![exclusive.clone()]
    );
    assert_eq!(principals(&*store, &s, "t-ok").await, vec![ok_cert.clone()]);

    // The exclusive attachment refuses another thing.
    let outcomes = import(
        &*store,
        &s,
        vec![ImportItem::Certificate(cert(
            &s,
            &exclusive,
            &["t-ok"],
            &[],
        ))],
    )
    .await;
    assert_eq!(
        outcomes,
        vec![ImportOutcome::Refused(ImportRefusal::Exclusive {
            thing: "holder".into()
        })]
    );
    assert_eq!(principals(&*store, &s, "t-ok").await, [ok_cert]);
}

pub async fn import_again_is_unchanged_and_different_is_refused(store: Arc<dyn Store>) {
    let s = fresh_scope();
    let c = hex_id();
    let batch = |s: &Scope| {
        vec![
            policy(s, "p", DOC),
            group(s, "g", None, &[("a", "1")]),
            thing_item(s, "t", &["g"]),
            ImportItem::Certificate(cert(s, &c, &["t"], &["p"])),
        ]
    };
    assert_eq!(import(&*store, &s, batch(&s)).await, created(4));
    let before = store.get_thing(&s, "t").await.unwrap().unwrap();
    let cert_before = store.get_certificate(&s, &c).await.unwrap().unwrap();
    assert_eq!(
        import(&*store, &s, batch(&s)).await,
        vec![ImportOutcome::Unchanged; 4]
    );
    assert_eq!(store.get_thing(&s, "t").await.unwrap().unwrap(), before);
    assert_eq!(
        store.get_certificate(&s, &c).await.unwrap().unwrap(),
        cert_before
    );
    assert_eq!(principals(&*store, &s, "t").await, vec![c.clone()]);
    assert_eq!(groups_of(&*store, &s, "t").await, ["g"]);

    let items = vec![
        policy(&s, "p", DOC2),
        group(&s, "g", None, &[("a", "2")]),
        ImportItem::Thing {
            record: thing(&s, "t", &[("k", "other")]),
            groups: Vec::new(),
            certificate: None,
        },
    ];
    let outcomes = import(&*store, &s, items).await;
    assert_eq!(
        outcomes,
        vec![ImportOutcome::Refused(ImportRefusal::AlreadyExists); 3]
    );
    let (_, v) = store
        .get_policy_version(&s, "p", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.unwrap().document, DOC);
    assert_eq!(store.get_thing(&s, "t").await.unwrap().unwrap(), before);
}

pub async fn import_adds_missing_relations_to_identical_resources(store: Arc<dyn Store>) {
    let s = fresh_scope();
    let c = hex_id();
    let items = vec![
        policy(&s, "p", DOC),
        group(&s, "g", None, &[]),
        thing_item(&s, "t", &[]),
        thing_item(&s, "u", &[]),
        ImportItem::Certificate(cert(&s, &c, &["t"], &[])),
    ];
    import(&*store, &s, items).await;
    let items = vec![
        thing_item(&s, "t", &["g"]),
        ImportItem::Certificate(cert(&s, &c, &["t", "u"], &["p"])),
    ];
    let outcomes = import(&*store, &s, items).await;
    assert_eq!(outcomes, vec![ImportOutcome::Unchanged; 2]);
    assert_eq!(groups_of(&*store, &s, "t").await, ["g"]);
    assert_eq!(principals(&*store, &s, "u").await, vec![c.clone()]);
    let arn = store.get_certificate(&s, &c).await.unwrap().unwrap().arn;
    assert_eq!(policies_of(&*store, &s, &arn).await, ["p"]);
    // The API sees the import's attachments like its own.
    assert_eq!(
        store
            .attach_policy(
                &s,
                "p",
                &PolicyTarget::Certificate {
                    id: c.clone(),
                    arn: arn.clone()
                },
                2,
                9
            )
            .await
            .unwrap(),
        Ok(())
    );
}

pub async fn import_many_relations_to_existing_things(store: Arc<dyn Store>) {
    let s = fresh_scope();
    // More existing things than one PostgreSQL transaction locks: the batch is still
    // decided item by item in order, whatever the engine does underneath.
    let n = 600;
    let things: Vec<ImportItem> = (0..n)
        .map(|i| thing_item(&s, &format!("thing-{i:04}"), &[]))
        .collect();
    assert_eq!(import(&*store, &s, things).await, created(n));
    let mut items: Vec<ImportItem> = vec![policy(&s, "p", DOC)];
    let ids: Vec<String> = (0..n).map(|_| hex_id()).collect();
    for (i, id) in ids.iter().enumerate() {
        items.push(ImportItem::Certificate(cert(
            &s,
            id,
            &[&format!("thing-{i:04}")],
            &["p"],
        )));
    }
    items.push(ImportItem::Certificate(cert(&s, &ids[0], &["ghost"], &[])));
    let outcomes = import(&*store, &s, items).await;
    assert_eq!(outcomes[..=n], created(n + 1)[..]);
    assert_eq!(
        outcomes[n + 1],
        ImportOutcome::Refused(ImportRefusal::ThingNotFound("ghost".into()))
    );
    for i in [0, 299, 599] {
        assert_eq!(
            principals(&*store, &s, &format!("thing-{i:04}")).await,
            [ids[i].clone()]
        );
    }
    let targets = store
        .list_targets_for_policy(&s, "p", None, 1000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(targets.len(), n);
}

pub async fn import_is_isolated_by_scope(store: Arc<dyn Store>) {
    let (a, b) = (fresh_scope(), fresh_scope());
    let c = hex_id();
    let items = vec![
        policy(&a, "p", DOC),
        group(&a, "g", None, &[]),
        thing_item(&a, "t", &["g"]),
    ];
    import(&*store, &a, items).await;
    // Nothing of account a is visible to b's import.
    let items = vec![
        thing_item(&b, "t2", &["g"]),
        ImportItem::Certificate(cert(&b, &c, &["t"], &[])),
        ImportItem::Certificate(cert(&b, &hex_id(), &[], &["p"])),
        thing_item(&b, "t", &[]),
    ];
    let outcomes = import(&*store, &b, items).await;
    assert_eq!(
        outcomes,
        vec![
            ImportOutcome::Refused(ImportRefusal::GroupNotFound("g".into())),
            ImportOutcome::Refused(ImportRefusal::ThingNotFound("t".into())),
            ImportOutcome::Refused(ImportRefusal::PolicyNotFound("p".into())),
            ImportOutcome::Created,
        ]
    );
    assert!(store.get_thing(&a, "t").await.unwrap().is_some());
    assert_eq!(groups_of(&*store, &a, "t").await, ["g"]);
    assert!(store.get_thing_group(&b, "g").await.unwrap().is_none());
}
