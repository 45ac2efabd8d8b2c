import streamlit as st

st.title("bottlenecks")
